"""Optional dependencies: imported where a feature needs them, and named with the install
command when they are missing, so the core install stays small (torch, numpy, safetensors,
tiktoken, tqdm, google-crc32c)."""

from __future__ import annotations

import importlib
from types import ModuleType

from gpt2kit.errors import GPT2KitError


class MissingExtraError(GPT2KitError):
    """A feature whose optional dependency is not installed."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """`module`, imported; if it cannot be, one line saying that `what` needs it and which
    `gpt2kit[extra]` brings it. A broken install counts as missing: reinstalling is the fix."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package = module.partition(".")[0]
        raise MissingExtraError(f"{what} needs {package}, which is not installed: pip install 'gpt2kit[{extra}]'"
                                ) from err
