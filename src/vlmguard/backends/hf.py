"""A local transformers VLM (``AutoModelForImageTextToText`` + ``AutoProcessor``) that batches requests.

Spec: ``hf:path/or/name?device=cpu|cuda|auto&dtype=float32|bfloat16|float16|auto&max_batch=8``

- torch and transformers are imported on first use; the model loads on the first request (or on
  :meth:`HFVLM.load`), in the backend's worker thread, so the event loop never blocks.
- **Micro-batching**: requests that arrive while a batch is generating wait in a queue; the next
  batch takes up to ``max_batch`` of them that share a generation config and runs them as one
  left-padded ``generate`` call. A lone request runs at once, without waiting for company.
- Messages go through the processor's chat template with their images in order; several images
  per message, images in earlier turns and text-only conversations all work.
- :meth:`HFVLM.generate_with_prefix` continues an assistant answer from a given prefix (white-box
  prefill), and :meth:`HFVLM.continuation_logprobs` scores a given answer token by token. The
  loaded ``model``, ``processor`` and ``tokenizer`` are public for other white-box defences.

Tested architectures: Idefics3 (SmolVLM), LLaVA and Qwen2-VL. Without torchvision, transformers
cannot build Qwen2-VL's processor (its video processor imports torchvision); the backend then builds
the Qwen2-VL prompt itself from the image processor and the tokenizer. Other image-text-to-text
architectures known to transformers are accepted but untested.

The architecture checks and the loading live in :mod:`~vlmguard.backends.hf_loading`, the queue
in :mod:`~vlmguard.backends.hf_batching`, the hand-built Qwen2-VL prompt in
:mod:`~vlmguard.backends.qwen2vl_prompt`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmguard.backends.base import DEFAULT_CONFIG, BaseVLM
from vlmguard.backends.chat_format import chat_template_messages
from vlmguard.backends.hf_batching import BatchQueue, PendingRequest
from vlmguard.backends.hf_loading import (
    DEVICES,
    DTYPES,
    check_model_dir,
    first_line,
    load_model_and_processor,
)
from vlmguard.errors import BackendError, ConfigError
from vlmguard.types import Completion, GenerateConfig, Message, Usage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenLogprob:
    """One token of a scored continuation and its log-probability under the model."""

    token: str
    token_id: int
    logprob: float


class HFVLM(BaseVLM):
    """A transformers image-text-to-text model served in one worker thread with micro-batching."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str = "cpu",
        dtype: str = "float32",
        max_batch: int = 8,
        name: str | None = None,
    ) -> None:
        if device not in DEVICES and not device.startswith("cuda:"):
            raise ConfigError(f"unknown device {device!r} (cpu, cuda, cuda:N, auto)")
        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r} ({', '.join(DTYPES)})")
        if max_batch < 1:
            raise ConfigError("max_batch must be >= 1")
        self.path = str(path)
        super().__init__(name or f"hf:{Path(self.path).name or self.path}")
        self.device_name = device
        self.dtype_name = dtype
        self._model: Any = None
        self._processor: Any = None
        self._load_lock = threading.Lock()
        self._queue = BatchQueue(self._generate_batch, max_batch=max_batch, name=self.name)

    @property
    def max_batch(self) -> int:
        """The most requests one batch takes."""
        return self._queue.max_batch

    @max_batch.setter
    def max_batch(self, value: int) -> None:
        self._queue.max_batch = value

    @property
    def batch_sizes(self) -> list[int]:
        """Size of every batch run so far (for monitoring and tests)."""
        return self._queue.batch_sizes

    # -- loading -----------------------------------------------------------------------------

    def load(self) -> None:
        """Load the model and processor now (blocking); later calls do nothing."""
        with self._load_lock:
            if self._model is not None:
                return
            self._model, self._processor = load_model_and_processor(
                self.path, self.device_name, self.dtype_name
            )

    @property
    def model(self) -> Any:
        """The loaded transformers model (loads it on first access)."""
        self.load()
        return self._model

    @property
    def processor(self) -> Any:
        """The processor: chat template, image processing and tokenizer (loads on first access)."""
        self.load()
        return self._processor

    @property
    def tokenizer(self) -> Any:
        """The processor's tokenizer (the processor itself where it is a tokenizer)."""
        return getattr(self.processor, "tokenizer", self.processor)

    # -- prompt building ---------------------------------------------------------------------

    def render(self, messages: Sequence[Message], prefix: str = "") -> str:
        """The prompt text the model sees: the chat template with a generation prompt, then ``prefix``."""
        if not messages:
            raise BackendError("no messages to send")
        conversation = chat_template_messages(messages)
        text = self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return str(text) + prefix

    def _encode(self, texts: list[str], images: list[list[Any]]) -> Any:
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if any(images):
            kwargs["images"] = images
        inputs = self.processor(**kwargs)
        model = self._model
        moved = {}
        for key, value in inputs.items():
            if hasattr(value, "to"):
                value = value.to(model.device)
                if value.is_floating_point():
                    value = value.to(model.dtype)
            moved[key] = value
        return moved

    # -- generation (worker thread) ----------------------------------------------------------

    def _prepare(
        self, batch: list[PendingRequest]
    ) -> tuple[list[PendingRequest], list[str], list[list[Any]]]:
        """Render every request; one whose prompt cannot be built fails alone, not its batch."""
        kept: list[PendingRequest] = []
        texts: list[str] = []
        images: list[list[Any]] = []
        for request in batch:
            try:
                text = self.render(request.messages, request.prefix)
                pil = [img.to_pil() for m in request.messages for img in m.images]
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, BackendError)
                    else BackendError(f"{self.name}: cannot build the prompt: {first_line(exc)}")
                )
                request.fail_threadsafe(error)
                continue
            kept.append(request)
            texts.append(text)
            images.append(pil)
        return kept, texts, images

    def _generate_batch(self, batch: list[PendingRequest]) -> list[Completion | None]:
        """Completions in ``batch`` order; ``None`` for a request that already failed on its own."""
        import torch

        self.load()
        start = time.perf_counter()
        config = batch[0].config
        kept, texts, images = self._prepare(batch)
        if not kept:
            return [None] * len(batch)
        inputs = self._encode(texts, images)
        tokenizer = self.tokenizer
        gen: dict[str, Any] = {"max_new_tokens": config.max_tokens, "pad_token_id": tokenizer.pad_token_id}
        if config.temperature > 0:
            gen.update(do_sample=True, temperature=config.temperature, top_p=config.top_p)
        else:
            gen["do_sample"] = False
        if config.stop:
            gen.update(stop_strings=list(config.stop), tokenizer=tokenizer)
        if config.seed is not None:
            torch.manual_seed(config.seed)
        with torch.inference_mode():
            output = self._model.generate(**inputs, **gen)
        prompt_len = inputs["input_ids"].shape[1]
        eos = self._model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        eos_ids.add(tokenizer.eos_token_id)
        elapsed = time.perf_counter() - start
        completions: dict[int, Completion] = {}
        for row, request in enumerate(kept):
            new = output[row, prompt_len:].tolist()
            finish = "length"
            for i, token in enumerate(new):
                if token in eos_ids:
                    new, finish = new[:i], "stop"
                    break
            text = tokenizer.decode(new, skip_special_tokens=True)
            for stop in config.stop:
                cut = text.find(stop)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
            completions[id(request)] = Completion(
                text=text,
                model=self.name,
                usage=Usage(
                    prompt_tokens=int(inputs["attention_mask"][row].sum()), completion_tokens=len(new)
                ),
                latency_s=time.perf_counter() - request.queued,
                finish_reason=finish,
            )
        log.debug("batch of %d generated in %.3fs", len(kept), elapsed)
        return [completions.get(id(r)) for r in batch]

    # -- the public calls --------------------------------------------------------------------

    async def generate(self, messages: Sequence[Message], config: GenerateConfig | None = None) -> Completion:
        """The model's answer to ``messages``, generated in a batch with requests of the same config."""
        return await self._queue.submit(messages, config or DEFAULT_CONFIG, "")

    async def generate_with_prefix(
        self, messages: Sequence[Message], prefix: str, config: GenerateConfig | None = None
    ) -> Completion:
        """Continue an assistant answer that starts with ``prefix``; returns the continuation only."""
        return await self._queue.submit(messages, config or DEFAULT_CONFIG, prefix)

    async def continuation_logprobs(
        self, messages: Sequence[Message], continuation: str
    ) -> list[TokenLogprob]:
        """Log-probabilities of the tokens of ``continuation`` as the assistant's answer to ``messages``."""
        return await self._queue.call(self._logprobs, list(messages), continuation)

    def _logprobs(self, messages: list[Message], continuation: str) -> list[TokenLogprob]:
        import torch

        self.load()
        prompt = self.render(messages)
        images = [[img.to_pil() for m in messages for img in m.images]]
        prompt_len = self._encode([prompt], images)["input_ids"].shape[1]
        inputs = self._encode([prompt + continuation], images)
        with torch.inference_mode():
            logits = self._model(**inputs).logits[0].float()
        ids = inputs["input_ids"][0]
        logprobs = torch.log_softmax(logits[prompt_len - 1 : -1], dim=-1)
        targets = ids[prompt_len:]
        values = logprobs.gather(1, targets.unsqueeze(1)).squeeze(1)
        tokenizer = self.tokenizer
        return [
            TokenLogprob(token=tokenizer.decode([int(t)]), token_id=int(t), logprob=float(v))
            for t, v in zip(targets.tolist(), values.tolist(), strict=True)
        ]

    async def aclose(self) -> None:
        """Stop the worker thread and release the model."""
        self._queue.shutdown()
        self._model = None
        self._processor = None


def _looks_like_path(target: str) -> bool:
    """True for what cannot be a hub id (``name`` or ``org/name``)."""
    return target.startswith((".", "/", "~")) or "\\" in target or target.count("/") > 1


def hf_from_spec(target: str, options: dict[str, str]) -> HFVLM:
    """Build the backend from ``hf:PATH?device=...&dtype=...&max_batch=...&name=...``.

    A local directory is checked at once (exists, has a config, image-text-to-text architecture);
    a hub name (``org/name``) is resolved when the model loads, which fails offline unless cached.
    """
    opts = dict(options)
    if not target:
        raise ConfigError("hf backend needs a model path: hf:./path/to/model")
    device = opts.pop("device", "cpu")
    dtype = opts.pop("dtype", "float32")
    name = opts.pop("name", None)
    try:
        max_batch = int(opts.pop("max_batch", "8"))
    except ValueError:
        raise ConfigError("max_batch must be an integer") from None
    if opts:
        unknown = ", ".join(sorted(opts))
        raise ConfigError(f"unknown hf option(s): {unknown} (known: device, dtype, max_batch, name)")
    path = Path(target).expanduser()
    if path.exists():
        check_model_dir(path)
    elif _looks_like_path(target) or os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        raise ConfigError(
            f"hf model not found: {target} (no such directory; not a hub name, or hub downloads are off)"
        )
    where = str(path) if path.exists() else target
    return HFVLM(where, device=device, dtype=dtype, max_batch=max_batch, name=name)
