"""The append-only store: durable events, folding, torn last lines, corruption, group commit, lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vlmguard.synth.records import StageFailure, StageName, SynthRecord
from vlmguard.synth.seeds import Seed
from vlmguard.synth.store import RecordStore, RunLock, StoreError, event_for, fold, read_events


def _seeds(n: int) -> list[Seed]:
    return [Seed(id=f"s{i}", prompt=f"p{i}", kind="unsafe", y_safe="s", y_unsafe="u") for i in range(n)]


def _finished(seed: Seed, stage: StageName) -> SynthRecord:
    record = SynthRecord.from_seed(seed)
    return record.model_copy(update={"y_safe": "collected", "finished": [stage], "calls": {stage.value: 2}})


def test_events_fold_into_records(tmp_path: Path) -> None:
    seeds = _seeds(3)
    store = RecordStore(tmp_path / "r.jsonl")
    assert store.open() == []
    store.append_now(
        event_for(_finished(seeds[0], StageName.RESPONSES), StageName.RESPONSES, ("y_safe", "y_unsafe"))
    )
    failed = SynthRecord.from_seed(seeds[1]).model_copy(
        update={
            "failure": StageFailure(stage=StageName.RESPONSES, kind="teacher", reason="timeout"),
            "calls": {"responses": 3},
        }
    )
    store.append_now(event_for(failed, StageName.RESPONSES, ("y_safe",)))
    store.close()
    records = fold(seeds, read_events(tmp_path / "r.jsonl"))
    assert [r.id for r in records] == ["s0", "s1", "s2"]
    assert records[0].y_safe == "collected" and records[0].finished == [StageName.RESPONSES]
    assert records[0].calls == {"responses": 2}
    assert records[1].failure is not None and records[1].failure.reason == "timeout"
    assert records[2].finished == [] and records[2].failure is None
    # a later success clears the failure
    store = RecordStore(tmp_path / "r.jsonl")
    store.open()
    store.append_now(event_for(_finished(seeds[1], StageName.RESPONSES), StageName.RESPONSES, ("y_safe",)))
    store.close()
    again = fold(seeds, read_events(tmp_path / "r.jsonl"))[1]
    assert again.failure is None and again.finished == [StageName.RESPONSES]


def test_torn_last_line_is_ignored_and_cut_off(tmp_path: Path) -> None:
    seeds = _seeds(2)
    path = tmp_path / "r.jsonl"
    store = RecordStore(path)
    store.open()
    store.append_now(event_for(_finished(seeds[0], StageName.RESPONSES), StageName.RESPONSES, ("y_safe",)))
    store.close()
    good = path.read_bytes()
    with path.open("ab") as fh:
        fh.write(b'{"v":1,"id":"s1","stage":"respo')  # killed mid-write
    assert len(read_events(path)) == 1  # reading ignores it
    store = RecordStore(path)
    assert len(store.open()) == 1  # opening cuts it off into .torn
    assert path.read_bytes() == good
    assert (tmp_path / "r.jsonl.torn").read_bytes().startswith(b'{"v":1,"id":"s1"')
    store.append_now(event_for(_finished(seeds[1], StageName.RESPONSES), StageName.RESPONSES, ("y_safe",)))
    store.close()
    assert [e["id"] for e in read_events(path)] == ["s0", "s1"]


def test_garbage_complete_last_line_is_also_torn_but_middle_garbage_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    line = b'{"v":1,"id":"s0","stage":"responses","ok":true,"data":{}}\n'
    path.write_bytes(line + b"\x00\x00\x00\n")
    assert len(read_events(path, repair=True)) == 1 and path.read_bytes() == line
    path.write_bytes(line + b"garbage\n" + line)
    with pytest.raises(StoreError, match=r"r.jsonl:2"):
        read_events(path)


async def test_concurrent_appends_share_fsyncs_and_all_land(tmp_path: Path) -> None:
    seeds = _seeds(200)
    store = RecordStore(tmp_path / "r.jsonl")
    store.open()
    await asyncio.gather(
        *(
            store.append(event_for(_finished(s, StageName.RESPONSES), StageName.RESPONSES, ("y_safe",)))
            for s in seeds
        )
    )
    store.close()
    assert store.appended == 200
    assert store.syncs < 200  # group commit
    events = read_events(tmp_path / "r.jsonl")
    assert sorted(e["id"] for e in events) == sorted(s.id for s in seeds)


def test_one_writer_per_run(tmp_path: Path) -> None:
    with RunLock(tmp_path), pytest.raises(StoreError, match="in use"):
        RunLock(tmp_path).acquire()
    with RunLock(tmp_path):  # released: can be taken again
        pass
