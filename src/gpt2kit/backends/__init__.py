"""Model backends: implementations of the `Decoder` interface that generation and scoring run on.

`load` resolves a model name or path and hands it to a backend. Each backend is a module
with a `load(model, *, dtype, device) -> LoadedModel`, imported only when asked for, so a
backend's own dependencies (ONNX Runtime, ...) are needed only by those who use it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from gpt2kit.backends.decoder import Cache, Decoder
from gpt2kit.backends.loaded import LoadedModel
from gpt2kit.devices import resolve_device
from gpt2kit.errors import GPT2KitError

BACKENDS = {"torch": "gpt2kit.backends.torch_backend",  # name -> module
            "onnxruntime": "gpt2kit.backends.onnxruntime_backend"}  # folders of `gpt2kit export onnx`


class UnknownBackendError(GPT2KitError):
    """A backend name that no module implements."""


def backend_names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def backend_module(name: str):
    """The module implementing backend `name`, imported now."""
    if name not in BACKENDS:
        raise UnknownBackendError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[name])


def load(model: str | Path | None = None, *, backend: str = "torch", dtype: torch.dtype | None = None,
         device: torch.device | str | None = None, checkpoint_step: int | None = None,
         config_file: str | Path | None = None) -> LoadedModel:
    """A model ready for inference, its tokenizer, and where it came from.

    `model`: None or "default" (the model gpt2kit ships), a model folder or file in any format
    gpt2kit reads (Hugging Face / gpt2kit, OpenAI TensorFlow, MindSpore .ckpt), or a published
    name (gpt2 ... gpt2-xl, 124M ... 1558M). `dtype`: what the model computes in (default fp32);
    `device`: cpu (default), cuda, cuda:N or auto. `checkpoint_step`: one save of a TensorFlow run
    folder (gpt-2-simple's model-<step>); `config_file`: the hparams.json of a Keras .h5.
    """
    module = backend_module(backend)
    device = resolve_device(str(device)) if device is not None else torch.device("cpu")
    options = {k: v for k, v in (("checkpoint_step", checkpoint_step),
                                 ("config_file", None if config_file is None else Path(config_file))) if v is not None}
    return module.load(model, dtype=dtype or torch.float32, device=device, **options)


__all__ = ["BACKENDS", "Cache", "Decoder", "LoadedModel", "UnknownBackendError", "backend_module", "backend_names",
           "load"]
