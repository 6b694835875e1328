"""The built-in defences and :func:`load_defense`, which builds one from a spec string.

A spec is ``NAME[?key=value&...]``, e.g. ``none``, ``vlmguard?rewriter=evidence``, ``ecso``,
``mllm-protector?detector=tagger&detoxifier=target``, ``eta?n=3``. Values are URL-decoded, so a
backend spec that itself contains ``?`` or ``&`` is written with ``%3F`` and ``%26``. Unknown names
and unknown options are a :class:`~vlmguard.errors.ConfigError` that names them.

Every factory in :data:`~vlmguard.defenses.base.DEFENSES` is called as
``factory(options: DefenseOptions, **context)``: it reads its options from ``options`` and may use
objects the caller shares through ``context``:

- ``rewriter``: a ready :class:`~vlmguard.rewriter.base.Rewriter` for ``vlmguard`` (used when the
  spec names no ``rewriter``);
- ``backend_options``: a dict of :func:`~vlmguard.backends.spec.load_backend` keywords (retries,
  concurrency, cache) for backends the defence builds from specs (judges, detoxifiers);
- ``text_scorer`` / ``image_scorer`` / ``relevance``: ready scorer objects that replace the
  defaults of MLLM-Protector and ETA (when the spec does not name one).

Unused context keys are ignored, so a runner can pass the same context to every defence.
Plugins register in the entry-point group ``vlmguard.defenses`` with the same factory signature.
"""

from __future__ import annotations

from typing import Any

from vlmguard.defenses.base import DEFENSES, Defense
from vlmguard.errors import ConfigError
from vlmguard.registry import parse_named_spec

_BOOL = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


class DefenseOptions:
    """The ``key=value`` options of one defence spec, read with type checks.

    Each read records the key as known; :meth:`finish` raises a :class:`ConfigError` naming the
    options nobody read, with the known ones.
    """

    def __init__(self, defense: str, values: dict[str, str]) -> None:
        self.defense = defense
        self._values = dict(values)
        self._known: list[str] = []

    def _take(self, key: str) -> str | None:
        if key not in self._known:
            self._known.append(key)
        return self._values.pop(key, None)

    def _bad(self, key: str, value: str, expected: str) -> ConfigError:
        return ConfigError(f"defence {self.defense!r}: option {key}={value!r} must be {expected}")

    @staticmethod
    def _range(min_value: object, max_value: object) -> str:
        if min_value is not None and max_value is not None:
            return f"between {min_value} and {max_value}"
        return f"at least {min_value}" if min_value is not None else f"at most {max_value}"

    def get_str(self, key: str, default: str) -> str:
        value = self._take(key)
        return default if value is None else value

    def get_int(
        self, key: str, default: int, *, min_value: int | None = None, max_value: int | None = None
    ) -> int:
        raw = self._take(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self._bad(key, raw, "an integer") from None
        if (min_value is not None and value < min_value) or (max_value is not None and value > max_value):
            raise self._bad(key, raw, self._range(min_value, max_value))
        return value

    def get_float(
        self, key: str, default: float, *, min_value: float | None = None, max_value: float | None = None
    ) -> float:
        raw = self._take(key)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise self._bad(key, raw, "a number") from None
        if (
            value != value
            or (min_value is not None and value < min_value)
            or (max_value is not None and value > max_value)
        ):
            raise self._bad(key, raw, self._range(min_value, max_value))
        return value

    def get_bool(self, key: str, default: bool) -> bool:
        raw = self._take(key)
        if raw is None:
            return default
        try:
            return _BOOL[raw.strip().lower()]
        except KeyError:
            raise self._bad(key, raw, "true or false") from None

    def get_choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self._take(key)
        if raw is None:
            return default
        if raw not in choices:
            raise self._bad(key, raw, "one of " + ", ".join(choices))
        return raw

    def has(self, key: str) -> bool:
        """True when the spec gives ``key`` (does not consume it)."""
        return key in self._values

    def finish(self) -> None:
        """Raise :class:`ConfigError` when options are left that the defence does not know."""
        if self._values:
            unknown = ", ".join(sorted(self._values))
            known = ", ".join(self._known) or "none"
            raise ConfigError(f"unknown option(s) for defence {self.defense!r}: {unknown} (known: {known})")


def parse_defense_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``NAME?k=v&...`` into the name and its options; malformed or repeated options fail."""
    return parse_named_spec(spec, "defence", "eta?n=3")


# --------------------------------------------------------------------------- factories


def _backend_options(context: dict[str, Any]) -> dict[str, Any]:
    options = context.get("backend_options") or {}
    if not isinstance(options, dict):
        raise ConfigError("backend_options must be a dict of load_backend keywords")
    return options


def make_none(options: DefenseOptions, **context: Any) -> Defense:
    """``none``: no defence."""
    from vlmguard.defenses.none import NoDefense

    return NoDefense()


def make_vlmguard(options: DefenseOptions, **context: Any) -> Defense:
    """``vlmguard``: VLMGuard with any rewriter (``rewriter=evidence`` or a backend spec), the fail
    ``policy``, ``max_prompt_chars``, the conversation window (``history_turns``, ``history_chars``)
    and the rewriter's time limit ``timeout_s`` (0: none)."""
    from vlmguard.defenses.vlmguard_defense import VLMGuardDefense
    from vlmguard.pipeline import ConversationWindow

    rewriter_spec = options.get_str("rewriter", "")
    policy = options.get_choice("policy", "fail_closed", ("fail_closed", "fail_open"))
    max_chars = options.get_int("max_prompt_chars", 32_000, min_value=1)
    window = ConversationWindow(
        max_turns=options.get_int("history_turns", 8, min_value=0),
        max_chars=options.get_int("history_chars", 8000, min_value=0),
    )
    timeout = options.get_float("timeout_s", 0.0, min_value=0.0)
    rewriter = context.get("rewriter")
    if rewriter_spec or rewriter is None:
        from vlmguard.rewriter.load import load_rewriter

        rewriter = load_rewriter(
            rewriter_spec or "evidence",
            policy=policy,  # type: ignore[arg-type]
            **_backend_options(context),
        )
    return VLMGuardDefense(
        rewriter,
        max_prompt_chars=max_chars,
        policy=policy,  # type: ignore[arg-type]
        window=window,
        rewriter_timeout_s=timeout or None,
    )


def make_figstep(options: DefenseOptions, **context: Any) -> Defense:
    """``figstep``: the FigStep paper's defence prompt (system prompt)."""
    from vlmguard.defenses.figstep_prompt import figstep_defense

    return figstep_defense()


def make_adashield(options: DefenseOptions, **context: Any) -> Defense:
    """``adashield``: AdaShield-S static defence prompt (after the user's text)."""
    from vlmguard.defenses.adashield import adashield_defense

    return adashield_defense()


def make_self_reminder(options: DefenseOptions, **context: Any) -> Defense:
    """``self-reminder``: Self-Reminder system prompt + reminder suffix."""
    from vlmguard.defenses.self_reminder import self_reminder_defense

    return self_reminder_defense()


def make_ecso(options: DefenseOptions, **context: Any) -> Defense:
    """``ecso``: ECSO (options ``judge_tokens``, ``caption_tokens``)."""
    from vlmguard.defenses.ecso import ECSODefense

    return ECSODefense(
        judge_tokens=options.get_int("judge_tokens", 16, min_value=1, max_value=4096),
        caption_tokens=options.get_int("caption_tokens", 256, min_value=1, max_value=8192),
    )


def make_mllm_protector(options: DefenseOptions, **context: Any) -> Defense:
    """``mllm-protector``: ``detector`` (text scorer spec), ``detoxifier`` (``target`` or a backend spec),
    ``threshold``, ``detox_tokens``."""
    from vlmguard.defenses.mllm_protector import MLLMProtectorDefense
    from vlmguard.defenses.scorers import load_text_scorer

    backend_options = _backend_options(context)
    detector_spec = options.get_str("detector", "")
    detector = context.get("text_scorer")
    if detector_spec or detector is None:
        detector = load_text_scorer(detector_spec or "tagger", **backend_options)
    detox_spec = options.get_str("detoxifier", "target")
    detoxifier = None
    if detox_spec != "target":
        from vlmguard.backends.spec import load_backend

        detoxifier = load_backend(detox_spec, **backend_options)
    threshold = options.get_float("threshold", 0.5, min_value=1e-9, max_value=1.0)
    detox_tokens = options.get_int("detox_tokens", 0, min_value=0, max_value=131072)
    return MLLMProtectorDefense(
        detector, detoxifier=detoxifier, threshold=threshold, detox_tokens=detox_tokens or None
    )


def make_eta(options: DefenseOptions, **context: Any) -> Defense:
    """``eta``: ``n``, ``pre`` (image scorer spec), ``post`` (text scorer spec), ``relevance``,
    ``pre_threshold``, ``post_threshold``, ``mode`` (and|or), ``alpha``, ``prefix``, ``temperature``,
    ``top_p``, ``sentence_tokens``, ``max_sentences``."""
    from vlmguard.defenses.eta import SAFETY_PREFIX, ETADefense
    from vlmguard.defenses.scorers import load_image_scorer, load_relevance, load_text_scorer

    backend_options = _backend_options(context)
    n = options.get_int("n", 5, min_value=1, max_value=64)
    pre_spec, post_spec, rel_spec = (
        options.get_str("pre", ""),
        options.get_str("post", ""),
        options.get_str("relevance", ""),
    )
    pre = context.get("image_scorer")
    if pre_spec or pre is None:
        pre = load_image_scorer(pre_spec or "perception", **backend_options)
    post = context.get("text_scorer")
    if post_spec or post is None:
        post = load_text_scorer(post_spec or "tagger", **backend_options)
    relevance = context.get("relevance")
    if rel_spec or relevance is None:
        relevance = load_relevance(rel_spec or "lexical")
    return ETADefense(
        pre=pre,
        post=post,
        relevance=relevance,
        n=n,
        pre_threshold=options.get_float("pre_threshold", 0.5, min_value=1e-9, max_value=1.0),
        post_threshold=options.get_float("post_threshold", 0.5, min_value=1e-9, max_value=1.0),
        mode=options.get_choice("mode", "and", ("and", "or")),  # type: ignore[arg-type]
        alpha=options.get_float("alpha", 0.5, min_value=0.0, max_value=100.0),
        prefix=options.get_str("prefix", SAFETY_PREFIX),
        temperature=options.get_float("temperature", 0.8, min_value=0.0, max_value=2.0),
        top_p=options.get_float("top_p", 0.95, min_value=1e-9, max_value=1.0),
        sentence_tokens=options.get_int("sentence_tokens", 64, min_value=1, max_value=4096),
        max_sentences=options.get_int("max_sentences", 24, min_value=1, max_value=1000),
    )


EXAMPLES: dict[str, str] = {
    "none": "none",
    "vlmguard": "vlmguard?rewriter=evidence",
    "figstep": "figstep",
    "adashield": "adashield",
    "self-reminder": "self-reminder",
    "ecso": "ecso",
    "mllm-protector": "mllm-protector?detector=tagger&detoxifier=target",
    "eta": "eta?n=3",
}
"""An example spec per built-in defence (for listings and docs)."""


def load_defense(spec: str, **context: Any) -> Defense:
    """Build the defence named by ``spec`` (see the module docstring for the syntax and ``context``)."""
    name, values = parse_defense_spec(spec)
    factory = DEFENSES.get(name)
    options = DefenseOptions(name, values)
    defense = factory(options, **context)
    options.finish()
    if not isinstance(defense, Defense):
        raise ConfigError(f"defence {name!r} did not build a Defense (got {type(defense).__name__})")
    return defense
