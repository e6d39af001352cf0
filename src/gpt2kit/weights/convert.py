"""Convert between checkpoint formats: any readable format -> a complete model folder."""

from __future__ import annotations

from pathlib import Path

import torch

from gpt2kit.errors import WeightsError
from gpt2kit.weights.folder import (
    check_writable,
    detect_format,
    model_from_state,
    read_checkpoint,
    read_head,
    read_metadata,
    save_model,
)
from gpt2kit.weights.resolve import resolve_model_path


def convert(src: str | Path, dst: str | Path, *, src_format: str = "auto", dst_format: str = "hf",
            dtype: torch.dtype | None = None, quantize: str | None = None, overwrite: bool = False,
            checkpoint_step: int | None = None, config_file: Path | None = None) -> Path:
    """Read `src` (format detected unless given; `checkpoint_step` picks one save of a TensorFlow
    run folder), write a complete folder in `dst_format` (weights, config and tokenizer files).
    dtype None keeps the stored dtype; quantize "q8_0" (GGUF only) stores the matrices in ggml's
    Q8_0 blocks."""
    check_writable(dst_format, quantize)  # before the source is read
    if quantize is not None:
        dtype = torch.float32  # quantized from the fp32 weights
    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())) and not overwrite:
        raise WeightsError(f"{dst}: already exists and is not empty (pass --overwrite to replace its model files)")
    if dst.is_dir() and any(dst.iterdir()):
        try:
            held = detect_format(dst)
        except WeightsError:
            held = None
        if held is not None and held != dst_format:
            raise WeightsError(f"{dst}: holds a model in the {held} format; writing {dst_format} files beside it would "
                               "leave both (choose an empty folder)")
    path = resolve_model_path(src)
    config, state, fmt = read_checkpoint(path, src_format, dtype, checkpoint_step, config_file)
    model = model_from_state(config, state, read_head(path, fmt))  # a classifier keeps its head (hf only)
    from gpt2kit.tokenizer import Tokenizer

    metadata = None
    if dst_format == "hf":  # keep the source's own notes (where it came from, how it was made)
        metadata = {**read_metadata(path, fmt), "converted_from": f"{fmt}: {path}"}
    return save_model(model, dst, tokenizer=Tokenizer.for_model(path), fmt=dst_format, metadata=metadata,
                      quantize=quantize)
