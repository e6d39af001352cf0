"""Model folders: load and save (gpt2kit's own format is Hugging Face's)."""

from gpt2kit.weights.folder import load_model, save_model
from gpt2kit.weights.resolve import resolve_model_path

__all__ = ["load_model", "resolve_model_path", "save_model"]
