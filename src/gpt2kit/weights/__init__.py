"""Model files: load and save every supported format (gpt2kit's own format is Hugging Face's)."""

from gpt2kit.weights.folder import ModelInfo, detect_format, load_model, read_checkpoint, read_model, save_model
from gpt2kit.weights.resolve import resolve_model_path

__all__ = [
    "ModelInfo", "detect_format", "load_model", "read_checkpoint", "read_model", "resolve_model_path", "save_model",
]
