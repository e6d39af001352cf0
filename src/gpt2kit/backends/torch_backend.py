"""The PyTorch backend: gpt2kit's own `GPT2`, read from any format the weights package reads."""

from __future__ import annotations

from pathlib import Path

import torch

from gpt2kit.backends.loaded import LoadedModel
from gpt2kit.model.classifier import GPT2Classifier
from gpt2kit.tokenizer import Tokenizer
from gpt2kit.weights.folder import read_model
from gpt2kit.weights.resolve import DEFAULT_NAME


def load(model: str | Path | None, *, dtype: torch.dtype, device: torch.device, checkpoint_step: int | None = None,
         config_file: Path | None = None) -> LoadedModel:
    gpt2, info = read_model(DEFAULT_NAME if model is None else model, dtype=dtype, device=device,
                            checkpoint_step=checkpoint_step, config_file=config_file)
    classifier = isinstance(gpt2, GPT2Classifier)
    (gpt2.transformer if classifier else gpt2).pack_weights()  # faster on the CPU (for inference); else a no-op
    return LoadedModel(model=gpt2, tokenizer=Tokenizer.for_model(info.path), name=None if model is None else str(model),
                       path=info.path, format=info.format, backend="torch", dtype=dtype, metadata=info.metadata,
                       task="classify" if classifier else "generate")
