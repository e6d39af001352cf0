"""GPT2Classifier: GPT-2's hidden states, pooled, through a linear head: text -> class logits.

Pooling, as Texar's GPT2Classifier offers it and Hugging Face stores it:
- "last": the hidden state of each row's last real token (GPT-2 reads left to right, so only that
  position has seen the whole text). Hugging Face's `GPT2ForSequenceClassification`: head
  `score.weight` (num_labels, n_embd), no bias. Without an attention mask the last real token is
  found as transformers finds it, the rightmost id that is not `pad_token_id`; with a mask, the
  rightmost position it marks real, so left and right padding both work.
- "mean": the mean of the real tokens' hidden states (stored as a sequence classifier with
  `summary_type: "mean"`; transformers' class would pool the last token instead).
- "token": logits at every position, for token classification (`GPT2ForTokenClassification`:
  `classifier.weight` and `classifier.bias`).

The class names live in config.json as transformers writes them (`id2label`, `label2id`), so a
classifier moves between the two libraries with its labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gpt2kit.config import GPT2Config
from gpt2kit.errors import ConfigError
from gpt2kit.model.gpt2 import GPT2

POOLINGS = ("last", "mean", "token")
SEQUENCE_ARCHITECTURE = "GPT2ForSequenceClassification"
TOKEN_ARCHITECTURE = "GPT2ForTokenClassification"


@dataclass(frozen=True)
class ClassifierConfig:
    labels: tuple[str, ...]  # class names, in the order of the head's rows
    pooling: str = "last"
    pad_token_id: int | None = None  # how transformers finds padding without a mask (config.json's key)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if len(self.labels) < 1:
            raise ConfigError("a classifier needs at least one label")
        if len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"duplicate class names in {list(self.labels)}")

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def head_names(self) -> dict[str, str]:
        """Our head's tensor names -> the names transformers stores them under."""
        if self.pooling == "token":
            return {"score.weight": "classifier.weight", "score.bias": "classifier.bias"}
        return {"score.weight": "score.weight"}

    def to_hf_dict(self) -> dict[str, Any]:
        """The keys config.json holds for this head (besides the trunk's)."""
        data: dict[str, Any] = {
            "architectures": [TOKEN_ARCHITECTURE if self.pooling == "token" else SEQUENCE_ARCHITECTURE],
            "num_labels": self.num_labels,
            "id2label": {str(i): label for i, label in enumerate(self.labels)},
            "label2id": {label: i for i, label in enumerate(self.labels)},
            "pad_token_id": self.pad_token_id,
        }
        if self.pooling == "mean":
            data["summary_type"] = "mean"
        return data

    @classmethod
    def from_hf_dict(cls, data: dict[str, Any], source: str = "config.json") -> ClassifierConfig | None:
        """The head a config.json describes, or None for a language model."""
        architectures = data.get("architectures") or []
        if SEQUENCE_ARCHITECTURE in architectures:
            pooling = "mean" if data.get("summary_type") == "mean" else "last"
        elif TOKEN_ARCHITECTURE in architectures:
            pooling = "token"
        else:
            return None
        id2label = data.get("id2label")
        if isinstance(id2label, dict) and id2label:
            try:
                order = sorted(id2label, key=int)
            except ValueError:
                raise ConfigError(f"{source}: id2label keys must be class numbers, got {list(id2label)}") from None
            if [int(k) for k in order] != list(range(len(order))):
                raise ConfigError(f"{source}: id2label must number the classes 0..{len(order) - 1}, got {order}")
            labels = tuple(str(id2label[k]) for k in order)
        else:  # transformers' own default names
            n = data.get("num_labels", 2)
            if not isinstance(n, int) or n < 1:
                raise ConfigError(f"{source}: num_labels must be a positive integer, got {n!r}")
            labels = tuple(f"LABEL_{i}" for i in range(n))
        pad = data.get("pad_token_id")
        try:
            return cls(labels, pooling, pad if isinstance(pad, int) and not isinstance(pad, bool) else None)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None


def pool(h: torch.Tensor, pooling: str, *, attention_mask: torch.Tensor | None = None,
         input_ids: torch.Tensor | None = None, pad_token_id: int | None = None) -> torch.Tensor:
    """Hidden states (B, T, C) -> (B, C) for "last" and "mean", (B, T, C) unchanged for "token"."""
    if pooling == "token":
        return h
    B, T, _ = h.shape
    if attention_mask is not None:
        real = attention_mask.bool()
    elif pad_token_id is not None and input_ids is not None:
        real = input_ids != pad_token_id
    else:
        real = torch.ones(B, T, dtype=torch.bool, device=h.device)
    if pooling == "mean":
        weights = real.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
        return (h * weights).sum(1) / weights.sum(1).clamp(min=1)
    # the rightmost real position (0 for a row with none), as transformers' argmax over index * mask
    last = (torch.arange(T, device=h.device) * real.long()).argmax(-1)  # (B,)
    return h[torch.arange(B, device=h.device), last]


class GPT2Classifier(nn.Module):
    """`model(input_ids, attention_mask=...)` returns class logits (B, num_labels), or (B, T, num_labels)
    with token pooling. `transformer` is a whole GPT2 (its LM head unused)."""

    def __init__(self, transformer: GPT2, head: ClassifierConfig, score: nn.Linear | None = None) -> None:
        super().__init__()
        self.transformer = transformer
        self.head = head
        if score is None:
            score = new_score(transformer.config, head, device=transformer.device, dtype=transformer.dtype)
        if (score.out_features, score.in_features) != (head.num_labels, transformer.config.n_embd):
            raise ConfigError(f"a head of shape {(score.out_features, score.in_features)} does not fit "
                              f"{head.num_labels} labels and {transformer.config.n_embd} hidden units")
        self.score = score

    @property
    def config(self) -> GPT2Config:
        return self.transformer.config

    @property
    def labels(self) -> tuple[str, ...]:
        return self.head.labels

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.dtype

    def forward(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.transformer.hidden_states(input_ids, attention_mask=attention_mask)  # (B, T, C)
        pooled = pool(h, self.head.pooling, attention_mask=attention_mask, input_ids=input_ids,
                      pad_token_id=self.head.pad_token_id)
        return self.score(pooled)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, labels: list[str] | None = None, pooling: str = "last",
                        dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> GPT2Classifier:
        """A classifier folder as saved (by gpt2kit or transformers), or a language model with a new
        head for `labels` (said on stderr)."""
        from gpt2kit.weights.folder import read_classifier

        return read_classifier(name_or_path, labels=labels, pooling=pooling, dtype=dtype, device=device)[0]

    def save_pretrained(self, path: str | Path, *, metadata: dict | None = None) -> Path:
        """A Hugging Face folder that transformers loads as GPT2ForSequenceClassification (or
        GPT2ForTokenClassification)."""
        from gpt2kit.weights import save_model

        return save_model(self, path, metadata=metadata)


def new_score(config: GPT2Config, head: ClassifierConfig, *, device: torch.device | None = None,
              dtype: torch.dtype | None = None, seed: int | None = None) -> nn.Linear:
    """A fresh head, initialised as transformers initialises it: weights N(0, initializer_range), bias 0."""
    score = nn.Linear(config.n_embd, head.num_labels, bias=head.pooling == "token", device=device, dtype=dtype)
    gen = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
    with torch.no_grad():
        score.weight.copy_(torch.randn(score.weight.shape, generator=gen) * config.initializer_range)
        if score.bias is not None:
            score.bias.zero_()
    return score



def new_head_note(where: str, head: ClassifierConfig) -> str:
    """What to tell a user whose language model just got a random head."""
    pooled = "last-token" if head.pooling == "last" else head.pooling
    return (f"note: {where} is a language model: a new {pooled} classification head for {head.num_labels} classes "
            f"({', '.join(head.labels)}) is initialised at random")
