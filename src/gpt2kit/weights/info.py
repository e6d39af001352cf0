"""What a model folder holds, read without loading its weights (`gpt2kit info`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gpt2kit.config import GPT2Config, read_json
from gpt2kit.model.gpt2 import GPT2
from gpt2kit.weights.folder import check_read_options, detect_format, model_folder, read_head, read_metadata
from gpt2kit.weights.hf import SAFETENSORS_DTYPES, SafetensorsSource, find_weights_file, open_weights
from gpt2kit.weights.layouts import MINDSPORE, NANOGPT, OPENAI, expected_shapes
from gpt2kit.weights.llmc import find_llmc, read_header
from gpt2kit.weights.mindspore import find_ckpt, infer_config, read_ckpt, strip_prefix
from gpt2kit.weights.nanogpt import GPT2_VOCAB, find_ckpt_pt, load_checkpoint, model_state, nanogpt_config
from gpt2kit.weights.openai import checkpoint_prefix, prefix_step, saved_steps
from gpt2kit.weights.resolve import resolve_model_path
from gpt2kit.weights.tensorbundle import TensorBundle

# dtypes as the --dtype flags spell them
DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.float64: "fp64"}
_SAFETENSORS_NAMES = {code: DTYPE_NAMES[dtype] for dtype, code in SAFETENSORS_DTYPES.items()}


def dtype_name(dtype: torch.dtype | str) -> str:
    """fp32 / bf16 / fp16 (/ fp64), from a torch dtype or a safetensors dtype code such as "F32"."""
    if isinstance(dtype, str):
        return _SAFETENSORS_NAMES.get(dtype, dtype.lower())
    return DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


def describe_model(name_or_path: str | Path, checkpoint_step: int | None = None,
                   config_file: Path | None = None) -> dict[str, Any]:
    path = resolve_model_path(name_or_path)
    onnx = _onnx_graph(path)
    fmt = "onnx" if onnx else detect_format(path)
    check_read_options(path, fmt, checkpoint_step, config_file)
    folder = model_folder(path)
    note = run = None
    if onnx:  # a folder of `gpt2kit export onnx`: what the graph computes in, from its notes
        config = GPT2Config.from_hf_dict(read_json(folder / "config.json"), source=str(folder / "config.json"))
        dtypes = {onnx.get("dtype", "fp32") + (f" ({onnx['quantize']} matrix weights)" if onnx.get("quantize") else "")}
    elif fmt == "hf":
        config = GPT2Config.from_hf_dict(read_json(folder / "config.json"), source=str(folder / "config.json"))
        weights = path if path.is_file() else find_weights_file(folder)
        dtypes = _hf_dtypes(weights, config) if weights is not None else set()
    elif fmt == "openai":
        config = GPT2Config.from_file(folder / "hparams.json")
        prefix = checkpoint_prefix(path, checkpoint_step)
        bundle = TensorBundle(prefix)
        names = {OPENAI.file_name(n) for n in expected_shapes(config)}
        dtypes = {dtype_name(e.dtype) for name, e in bundle.entries.items() if name in names}
        run = _run(folder, prefix)
    elif fmt == "llmc":  # the header alone: sizes and version
        header = read_header(find_llmc(path))
        config, dtypes = header.config, {dtype_name(header.dtype)}
    elif fmt == "nanogpt":
        ckpt = find_ckpt_pt(path)
        data = load_checkpoint(ckpt)
        state = model_state(data, ckpt)
        config = nanogpt_config(data, state, ckpt)
        names = {NANOGPT.file_name(n) for n in expected_shapes(config)}
        dtypes = {dtype_name(t.dtype) for name, t in state.items() if name in names}
        if config.vocab_size > GPT2_VOCAB:
            note = (f"vocabulary padded to {config.vocab_size} by nanoGPT: ids {GPT2_VOCAB}.. are no tokens of "
                    "GPT-2's tokenizer (sampling may pick one)")
    elif fmt == "gguf":
        from gpt2kit.weights.gguf_file import describe_gguf

        config, dtypes = describe_gguf(path)
    elif fmt == "keras-h5":
        from gpt2kit.weights.keras_h5 import describe_h5

        config, dtypes = describe_h5(path, config_file)
    else:
        ckpt = find_ckpt(path)
        tensors = strip_prefix(read_ckpt(ckpt))
        config = infer_config(tensors, ckpt)
        names = {MINDSPORE.file_name(n) for n in expected_shapes(config)}
        dtypes = {dtype_name(t.dtype) for name, t in tensors.items() if name in names}
    with torch.device("meta"):
        n_params = GPT2(config).num_parameters()
    files = [path] if path.is_file() else sorted(p for p in folder.iterdir() if p.is_file())
    return {
        "path": str(path),
        "format": fmt,
        "config": config,
        "parameters": n_params,
        "dtype": ", ".join(sorted(dtypes)) or "unknown",
        "files": {p.name: p.stat().st_size for p in files},
        "metadata": read_metadata(path, "hf" if onnx else fmt),
        "head": None if onnx else read_head(path, fmt),  # a classifier's ClassifierConfig, or None
        "graph": onnx,  # the ONNX export's notes (variant, dtype, opset, quantize), or None
        "note": note,  # what a user should know of how the format was read, or None
        "run": run,  # a TensorFlow run folder's saves (gpt-2-simple): name, step, saved_steps, counter; or None
    }


def _run(folder: Path, prefix: Path) -> dict[str, Any] | None:
    """What a training run folder saved: the step read, the steps kept, and gpt-2-simple's `counter`
    (the step a resumed run counts on from); None for a folder of one unnumbered checkpoint."""
    steps = saved_steps(folder)
    if not steps:
        return None
    counter_file = folder / "counter"
    try:
        counter: int | None = int(counter_file.read_text().strip()) if counter_file.is_file() else None
    except ValueError:
        counter = None  # a damaged counter does not stop the weights from being described
    return {"name": folder.name, "step": prefix_step(prefix), "saved_steps": list(steps), "counter": counter}


def _onnx_graph(path: Path) -> dict[str, Any] | None:
    """The notes of an ONNX export in folder `path` (config.json's gpt2kit.onnx), or None."""
    if not path.is_dir() or not (path / "model.onnx").is_file() or find_weights_file(path) is not None:
        return None
    raw = read_json(path / "config.json") if (path / "config.json").is_file() else None
    notes = raw.get("gpt2kit") if isinstance(raw, dict) else None
    graph = notes.get("onnx") if isinstance(notes, dict) else None
    return graph if isinstance(graph, dict) else {"variant": "decoder", "dtype": "fp32"}


def _hf_dtypes(weights: Path, config: GPT2Config) -> set[str]:
    """The dtypes of the model's tensors (not of buffers or other entries) in a weights file."""
    source, layout = open_weights(weights)  # safetensors: headers only
    names = {layout.file_name(n) for n in expected_shapes(config)}
    if isinstance(source, SafetensorsSource):
        return {dtype_name(code) for name, code in source.dtypes.items() if name in names}
    return {dtype_name(source.load(name).dtype) for name in source.names() if name in names}
