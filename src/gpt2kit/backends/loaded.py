"""What `gpt2kit.load` returns: a model ready to run, its tokenizer, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gpt2kit.backends.decoder import Decoder
from gpt2kit.devices import slow_dtype_warning
from gpt2kit.errors import GPT2KitError

if TYPE_CHECKING:
    from gpt2kit.tokenizer import Tokenizer

RANDOM_WEIGHTS_NOTE = ("note: this model has random, untrained weights, so its text is noise "
                       "(train it with `gpt2kit finetune`, or leave out --model for the shipped model)")


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded for inference by one backend.

    Where it came from lives here, not on the model: a model trained or changed in memory
    afterwards does not carry a stale claim about its files.
    """

    model: Decoder  # or a GPT2Classifier, when task is "classify"
    tokenizer: Tokenizer
    name: str | None  # as asked (None: the shipped default model)
    path: Path  # the folder or file read: a published name resolved to its local copy
    format: str  # the stored format: hf, openai, mindspore
    backend: str  # which backend runs it: torch, ...
    dtype: torch.dtype  # what the model computes in
    metadata: dict[str, Any] = field(default_factory=dict)  # config.json's "gpt2kit" notes: origin, random_init
    task: str = "generate"  # "classify" for a GPT2Classifier (config.json's architectures say which)

    @property
    def random_weights(self) -> bool:
        return bool(self.metadata.get("random_init"))

    def require_task(self, task: str) -> None:
        """Refuse a model made for another task, in one line that says what to do."""
        if task == self.task:
            return
        shown = self.name or "the default model"
        if self.task == "classify":
            raise GPT2KitError(f"{shown}: a classifier (labels {', '.join(self.model.labels)}), which does not "
                               "generate text; run it with `gpt2kit classify`, or give a language model")
        raise GPT2KitError(f"{shown}: a language model without a classification head; fine-tune one with "
                           f"`gpt2kit finetune --task classify --model {self.name or 'default'} --data train.csv "
                           "--out DIR`")

    def description(self) -> str:
        """One line naming the model that speaks: the name asked for and the origin it records."""
        label = " — ".join(x for x in (self.name, self.metadata.get("origin")) if x) or "gpt2kit's default model"
        return f"model: {label}"

    def notes(self, fp32: str = "fp32") -> list[str]:
        """What a user should be told before the model's text, one line each: a dtype that is slow
        on this device (`fp32` says how to ask for fp32 instead, e.g. a CLI flag), the description,
        and a warning when the weights are random."""
        slow = slow_dtype_warning(self.dtype, self.model.device, fp32)
        return [*([slow] if slow else []), self.description(), *([RANDOM_WEIGHTS_NOTE] if self.random_weights else [])]
