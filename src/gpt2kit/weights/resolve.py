"""Model name or path -> a local folder.

A path is used as it is; `default` is the model gpt2kit ships. A published name
(gpt2 ... gpt2-xl, or 124M ... 1558M) resolves through the Hugging Face Hub cache,
downloading only when the hub is reachable; offline with no cached copy, the error
says how to get the weights.
"""

from __future__ import annotations

from pathlib import Path

from gpt2kit.config import ALIASES, PUBLISHED
from gpt2kit.errors import ModelNotFoundError
from gpt2kit.extras import require

DEFAULT_MODEL = Path(__file__).parents[1] / "default_model"  # shipped inside the package
DEFAULT_NAME = "default"  # --model default: the shipped model
HUB_REPOS = {name: f"openai-community/{name}" for name in PUBLISHED}
HUB_FILES = [
    "config.json", "generation_config.json", "model.safetensors",
    "vocab.json", "merges.txt", "tokenizer_config.json",
]


def resolve_model_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path  # a folder, or a single-file checkpoint (MindSpore .ckpt)
    if str(name_or_path) == DEFAULT_NAME:
        return DEFAULT_MODEL
    name = ALIASES.get(str(name_or_path), str(name_or_path))
    if name in HUB_REPOS:
        return hub_snapshot(name, HUB_REPOS[name])
    known = ", ".join([*PUBLISHED, *ALIASES])
    raise ModelNotFoundError(f"{name_or_path}: no such model folder, and not a published model name ({known}) "
                             f"or {DEFAULT_NAME!r} (the shipped model)")


def hub_snapshot(name: str, repo_id: str) -> Path:
    huggingface_hub = require("huggingface_hub", "hub", f"loading '{name}' from the Hugging Face Hub")

    try:
        return Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=HUB_FILES, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure here just means "not cached"
        pass
    how = f"fetch it where the network reaches the hub (`hf download {repo_id}`), or pass a local model folder"
    if huggingface_hub.is_offline_mode():
        raise ModelNotFoundError(f"model '{name}' is not in the Hugging Face cache and the hub is offline; {how}")
    try:
        return Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=HUB_FILES))
    except Exception as err:  # noqa: BLE001 - network, auth and HTTP errors all end here
        raise ModelNotFoundError(
            f"model '{name}' is not cached and could not be downloaded from the hub ({type(err).__name__}); {how}"
        ) from None
