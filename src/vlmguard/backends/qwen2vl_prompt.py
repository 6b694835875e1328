"""Qwen2-VL model inputs built from its image processor and tokenizer, for when transformers cannot
build ``Qwen2VLProcessor`` (its video processor imports torchvision, which may not be installed)."""

from __future__ import annotations

from typing import Any

from vlmguard.errors import BackendError


class Qwen2VLPromptProcessor:
    """Qwen2-VL inputs built by hand from the image processor and tokenizer (no torchvision needed).

    Mirrors ``Qwen2VLProcessor`` for images: each ``<|image_pad|>`` becomes as many pad tokens as
    the image has merged patches, and ``mm_token_type_ids`` marks them.
    """

    image_token = "<|image_pad|>"

    def __init__(self, image_processor: Any, tokenizer: Any) -> None:
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)

    def apply_chat_template(self, conversation: list[dict[str, Any]], **kwargs: Any) -> Any:
        """The tokenizer's chat template applied to ``conversation``."""
        return self.tokenizer.apply_chat_template(conversation, **kwargs)

    def __call__(self, *, text: list[str], images: list[list[Any]] | None = None, **kwargs: Any) -> Any:
        """Token ids, attention mask, ``mm_token_type_ids`` and pixel inputs for a left-padded batch."""
        flat = [img for sample in images or [] for img in sample]
        image_inputs: dict[str, Any] = {}
        texts = list(text)
        if flat:
            image_inputs = dict(self.image_processor(images=flat, return_tensors="pt"))
            grid = image_inputs["image_grid_thw"]
            merge = int(getattr(self.image_processor, "merge_size", 2)) ** 2
            index = 0
            for i, sample in enumerate(texts):
                while self.image_token in sample:
                    count = int(grid[index].prod()) // merge
                    sample = sample.replace(self.image_token, "<|placeholder|>" * count, 1)
                    index += 1
                texts[i] = sample.replace("<|placeholder|>", self.image_token)
            if index != len(flat):
                raise BackendError(f"prompt has {index} image placeholders for {len(flat)} images")
        encoded = self.tokenizer(texts, padding=True, return_tensors="pt")
        encoded["mm_token_type_ids"] = (encoded["input_ids"] == self.image_token_id).long()
        encoded.update(image_inputs)
        return encoded

    def batch_decode(self, *args: Any, **kwargs: Any) -> Any:
        """The tokenizer's ``batch_decode``."""
        return self.tokenizer.batch_decode(*args, **kwargs)
