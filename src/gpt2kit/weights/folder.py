"""Load and save models in any supported format.

Loading detects the format from the files (Hugging Face folder, OpenAI TensorFlow
checkpoint, MindSpore .ckpt, GGUF, llm.c model.bin, nanoGPT ckpt.pt, gpt-tf2's Keras .h5),
reads our state dict through the format's key map
(layouts.py), builds the model on the meta device and assigns the tensors: no random
initialisation runs and no second copy of the weights is made.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gpt2kit.atomic import fsync_path, fsync_tree, move_into_place
from gpt2kit.config import GPT2Config, read_generation_config, read_json
from gpt2kit.errors import ConfigError, WeightsError
from gpt2kit.model.classifier import ClassifierConfig, GPT2Classifier, new_head_note, new_score
from gpt2kit.model.gpt2 import GPT2
from gpt2kit.weights.files import KINDS, file_kind
from gpt2kit.weights.hf import WEIGHT_FILES, find_weights_file, open_weights, write_safetensors
from gpt2kit.weights.layouts import collect
from gpt2kit.weights.resolve import resolve_model_path

METADATA_KEY = "gpt2kit"  # our own notes inside config.json (transformers ignores unknown keys)
FORMATS = ("hf", "openai", "mindspore", "gguf", "llmc", "nanogpt", "keras-h5")
WRITABLE = ("hf", "openai", "mindspore", "gguf", "llmc", "nanogpt", "keras-h5")
KIND_FORMATS = {"safetensors": "hf", "torch": "hf", "tf-index": "openai", "mindspore": "mindspore", "gguf": "gguf",
                "llmc": "llmc", "nanogpt": "nanogpt", "hdf5": "keras-h5"}
SUFFIX_FORMATS = {".safetensors": "hf", ".bin": "hf", ".index": "openai", ".ckpt": "mindspore", ".gguf": "gguf",
                  ".pt": "nanogpt", ".h5": "keras-h5"}


def detect_format(path: Path) -> str:
    """Which format a file or folder holds, told by the files' contents (names alone mislead:
    TensorFlow's and MindSpore's checkpoints both end in .ckpt and sit beside an hparams.json);
    the error lists what was looked for."""
    if path.is_file():
        if path.name.endswith(".index.json"):  # the shard index of sharded safetensors
            return "hf"
        kind = file_kind(path)
        if kind == "llmc-tokenizer":
            raise WeightsError(f"{path}: llm.c's tokenizer file, not a model (the model is the .bin beside it)")
        if kind is not None:
            return KIND_FORMATS[kind]
        if path.suffix == ".bin" and path.name not in WEIGHT_FILES and not (path.parent / "config.json").is_file():
            return "llmc"  # a Hugging Face .bin has its config.json beside it; llm.c's reader says what is wrong
        if path.suffix in SUFFIX_FORMATS:  # damaged, most likely: that format's reader says how
            return SUFFIX_FORMATS[path.suffix]
        raise WeightsError(f"{path}: a file in no known format (its bytes are not those of "
                           f"{', '.join(KINDS.values())})")
    hf = find_weights_file(path)
    if hf is not None and (hf.name.endswith(".index.json") or file_kind(hf) in ("safetensors", "torch")):
        return "hf"
    if any(file_kind(p) == "tf-index" for p in sorted(path.glob("*.index"))):
        return "openai"
    if any(file_kind(p) == "mindspore" for p in sorted(path.glob("*.ckpt"))):
        return "mindspore"
    if any(file_kind(p) == "gguf" for p in sorted(path.glob("*.gguf"))):
        return "gguf"
    if any(file_kind(p) == "llmc" for p in sorted(path.glob("*.bin"))):
        return "llmc"
    if any(file_kind(p) == "nanogpt" for p in sorted(path.glob("*.pt"))):
        return "nanogpt"
    if any(file_kind(p) == "hdf5" for p in sorted(path.glob("*.h5"))):
        return "keras-h5"
    # nothing readable: the format the names suggest, whose reader says what is wrong
    if (path / "config.json").is_file() or hf is not None:
        return "hf"
    if (path / "checkpoint").is_file() or any(path.glob("*.index")):
        return "openai"
    if any(path.glob("*.ckpt")):
        return "mindspore"
    if any(path.glob("*.gguf")):
        return "gguf"
    if (path / "model.bin").is_file():
        return "llmc"
    if (path / "ckpt.pt").is_file():
        return "nanogpt"
    if any(path.glob("*.h5")):
        return "keras-h5"
    raise WeightsError(
        f"{path}: no model in a known format (looked for config.json + {' / '.join(WEIGHT_FILES)} (Hugging Face), "
        "hparams.json + checkpoint + *.index (OpenAI TensorFlow), *.ckpt (MindSpore), *.gguf (llama.cpp), "
        "*.bin (llm.c), *.pt (nanoGPT), *.h5 (gpt-tf2 Keras))")


def model_folder(path: Path) -> Path:
    """The folder of a model given as a folder or as one of its files."""
    return path if path.is_dir() else path.parent


def _read_hf(path: Path, dtype: torch.dtype | None) -> tuple[GPT2Config, dict[str, torch.Tensor]]:
    folder = model_folder(path)
    config_path = folder / "config.json"
    if not config_path.is_file():
        if path.is_file():
            raise WeightsError(f"{path}: no config.json beside it (the weights file holds no model shape; put the "
                               "model's config.json in the same folder)")
        raise WeightsError(f"{folder}: no config.json (a model folder holds config.json and model.safetensors)")
    config = GPT2Config.from_hf_dict(read_json(config_path), source=str(config_path))
    weights = path if path.is_file() else find_weights_file(folder)
    if weights is None:
        if (folder / "model.onnx").is_file():  # written by `gpt2kit export onnx`: a graph, not PyTorch weights
            raise WeightsError(f"{folder}: holds an ONNX export (model.onnx), which PyTorch does not read; run it "
                               "with --backend onnxruntime (gpt2kit.load(..., backend=\"onnxruntime\"))")
        raise WeightsError(f"{folder}: no weights file (looked for {', '.join(WEIGHT_FILES)})")
    source, layout = open_weights(weights)
    head = ClassifierConfig.from_hf_dict(read_json(config_path), source=str(config_path))
    if head is None:
        return config, collect(layout, source, config, weights, "config.json", dtype)
    # a classifier: the trunk as a language model's, then the head's tensors under our names
    files = set(head.head_names.values())
    trunk = dataclasses.replace(layout, ignore=lambda name: layout.ignore(name) or name in files)
    state = collect(trunk, source, config, weights, "config.json", dtype)
    present = set(source.names())
    for ours, file_name in head.head_names.items():
        if file_name not in present:
            raise WeightsError(f"{weights}: missing tensor '{file_name}' (config.json describes a classifier)")
        want = (head.num_labels, config.n_embd) if ours.endswith("weight") else (head.num_labels,)
        if tuple(source.shape(file_name)) != want:
            raise WeightsError(f"{weights}: tensor '{file_name}' has shape {tuple(source.shape(file_name))}, "
                               f"config.json's {head.num_labels} labels imply {want}")
        t = source.load(file_name)
        state[ours] = t.to(dtype or t.dtype).contiguous()
    return config, state


def _readers() -> dict[str, Callable]:
    from gpt2kit.weights.gguf_file import read_gguf
    from gpt2kit.weights.keras_h5 import read_keras_h5
    from gpt2kit.weights.llmc import read_llmc
    from gpt2kit.weights.mindspore import read_mindspore
    from gpt2kit.weights.nanogpt import read_nanogpt
    from gpt2kit.weights.openai import read_openai

    return {"hf": _read_hf, "openai": read_openai, "mindspore": read_mindspore, "gguf": read_gguf,
            "llmc": read_llmc, "nanogpt": read_nanogpt, "keras-h5": read_keras_h5}


def check_read_options(path: Path, fmt: str, checkpoint_step: int | None, config_file: Path | None = None) -> None:
    """A saved step is picked only among a TensorFlow run folder's saves (other formats hold one model),
    and a config file is named only for a Keras .h5 (other formats state their shape)."""
    if config_file is not None and fmt != "keras-h5":
        raise WeightsError(f"{path}: a {fmt} model states its own shape; --config names the hparams.json of a "
                           "Keras .h5 only")
    if checkpoint_step is not None and fmt != "openai":
        raise WeightsError(f"{path}: a {fmt} model holds one checkpoint; picking step {checkpoint_step} is only for "
                           "TensorFlow checkpoint folders (model-<step>.index)")


def read_checkpoint(path: Path, fmt: str = "auto", dtype: torch.dtype | None = None,
                    checkpoint_step: int | None = None, config_file: Path | None = None,
                    ) -> tuple[GPT2Config, dict[str, torch.Tensor], str]:
    """Config, our state dict, and the format of a checkpoint; `checkpoint_step` picks one save of a
    TensorFlow run folder (gpt-2-simple's model-<step>) instead of the latest; `config_file` is the
    hparams.json of a Keras .h5 kept elsewhere than beside it."""
    if fmt == "auto":
        fmt = detect_format(path)
    elif fmt not in FORMATS:
        raise WeightsError(f"unknown format {fmt!r}; known: auto, {', '.join(FORMATS)}")
    check_read_options(path, fmt, checkpoint_step, config_file)
    options = {k: v for k, v in (("checkpoint_step", checkpoint_step), ("config_file", config_file))
               if v is not None}
    config, state = _readers()[fmt](path, dtype, **options)
    return config, state, fmt


def model_from_state(config: GPT2Config, state: dict[str, torch.Tensor],
                     head: ClassifierConfig | None = None) -> GPT2 | GPT2Classifier:
    """The model a state dict holds: a GPT2, or with `head` a GPT2Classifier (the head's tensors
    are the state's `score.*`)."""
    trunk = {k: v for k, v in state.items() if not k.startswith("score.")}
    with torch.device("meta"):
        model = GPT2(config)
    model.load_state_dict(trunk, assign=True)
    if head is None:
        return model.eval()
    with torch.device("meta"):
        score = new_score(config, head)
    score.load_state_dict({k.removeprefix("score."): v for k, v in state.items() if k.startswith("score.")},
                          assign=True)
    return GPT2Classifier(model, head, score).eval()


def read_head(path: Path, fmt: str) -> ClassifierConfig | None:
    """The classification head a model's config.json describes (None for a language model; only
    Hugging Face folders hold classifiers)."""
    if fmt != "hf":
        return None
    config_path = model_folder(path) / "config.json"
    return ClassifierConfig.from_hf_dict(read_json(config_path), source=str(config_path))


@dataclass(frozen=True)
class ModelInfo:
    """Where a loaded model came from: kept beside the model, not on it, so that a model built
    or changed in memory never claims the files it was first read from."""

    path: Path  # the folder or file read (a published name resolved to its local copy)
    format: str  # one of FORMATS
    metadata: dict[str, Any] = field(default_factory=dict)  # config.json's "gpt2kit" notes: origin, random_init


def read_metadata(path: Path, fmt: str) -> dict[str, Any]:
    """Our own notes stored with a model (only Hugging Face folders have a place for them)."""
    if fmt != "hf":
        return {}
    raw = read_json(model_folder(path) / "config.json")
    notes = raw.get(METADATA_KEY, {}) if isinstance(raw, dict) else {}
    return notes if isinstance(notes, dict) else {}


def read_model(
    name_or_path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    fmt: str = "auto",
    checkpoint_step: int | None = None,
    config_file: Path | None = None,
) -> tuple[GPT2, ModelInfo]:
    """A GPT2 from a model folder or file in any supported format, or a published name, and
    where it came from; fp32 unless `dtype` says otherwise."""
    path = resolve_model_path(name_or_path)
    config, state, fmt = read_checkpoint(path, fmt, dtype or torch.float32, checkpoint_step, config_file)
    model = model_from_state(config, state, read_head(path, fmt))
    trunk = model.transformer if isinstance(model, GPT2Classifier) else model
    trunk.generation_config = read_generation_config(path) if path.is_dir() else {}
    info = ModelInfo(path, fmt, read_metadata(path, fmt))
    return (model.to(device) if device is not None else model), info


def read_classifier(name_or_path: str | Path, *, labels: list[str] | None = None, pooling: str = "last",
                    dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                    seed: int | None = None) -> tuple[GPT2Classifier, ModelInfo]:
    """A classifier as saved, or a language model with a new head for `labels` (`pooling`), which
    is said on stderr: its predictions mean nothing until it is trained."""
    model, info = read_model(name_or_path, dtype=dtype, device=device)
    if isinstance(model, GPT2Classifier):
        if labels is not None and list(labels) != list(model.labels):
            raise WeightsError(f"{info.path}: a classifier of the classes {', '.join(model.labels)}, not "
                               f"{', '.join(labels)}")
        return model, info
    if not labels:
        raise WeightsError(f"{info.path}: a language model without a classification head; fine-tune one with "
                           f"`gpt2kit finetune --task classify --model {name_or_path} --data train.csv --out DIR`")
    try:
        head = ClassifierConfig(tuple(labels), pooling, pad_token_id=model.config.eos_token_id)
    except ConfigError as err:
        raise WeightsError(str(err)) from None
    score = new_score(model.config, head, device=model.device, dtype=model.dtype, seed=seed)
    print(new_head_note(str(info.path), head) + " (train it with `gpt2kit finetune --task classify`)",
          file=sys.stderr)
    return GPT2Classifier(model, head, score), info


def load_model(name_or_path: str | Path, *, dtype: torch.dtype | None = None,
               device: torch.device | str | None = None, fmt: str = "auto",
               checkpoint_step: int | None = None, config_file: Path | None = None) -> GPT2:
    """The model of `read_model` alone (`GPT2.from_pretrained`); of a classifier, its GPT2 trunk."""
    model = read_model(name_or_path, dtype=dtype, device=device, fmt=fmt, checkpoint_step=checkpoint_step,
                       config_file=config_file)[0]
    return model.transformer if isinstance(model, GPT2Classifier) else model


def atomic_folder(path: Path, write: Callable[[Path], None]) -> Path:
    """Run `write(tmp)` on a temporary folder beside `path`, then move its files into place.

    A new folder appears by one rename; into an existing one, files move one by one with
    os.replace (weights last, an ONNX graph after its weights), so an interruption never leaves
    a half-written file under its real name and never touches files the folder held besides
    ours. Everything is fsynced before it is renamed, and the renames are fsynced after.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's private 0700 would stay on the renamed folder
    try:
        write(tmp)
        if not path.exists():
            move_into_place(tmp, path)
        else:
            if not path.is_dir():
                raise WeightsError(f"{path}: exists and is not a folder")
            fsync_tree(tmp)  # the files' data is on disk before any of them takes a real name
            names = sorted(os.listdir(tmp), key=lambda n: (_move_order(n), n))
            for name in names:
                os.replace(tmp / name, path / name)
            fsync_path(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _move_order(name: str) -> int:
    """When a file moves into an existing folder: weights after the small files, and an ONNX graph
    last of all, after the weights file it points to."""
    if name.endswith(".onnx"):
        return 2
    return int("safetensors" in name or ".data-" in name or name.endswith(".onnx.data")
               or name in ("model.bin", "ckpt.pt", "model.h5"))


def check_writable(fmt: str, quantize: str | None = None) -> None:
    if fmt not in WRITABLE:
        raise WeightsError(f"cannot write format {fmt!r}; writable: {', '.join(WRITABLE)}")
    if quantize is not None and fmt != "gguf":  # Q8_0 blocks exist in GGUF only
        raise WeightsError(f"{quantize} is a GGUF type: the {fmt} format stores fp32, fp16 or bf16 (use --to gguf)")


def write_hf(model: GPT2 | GPT2Classifier, state: dict[str, torch.Tensor], folder: Path, tokenizer: Any,
             metadata: dict[str, Any] | None) -> None:
    """config.json, model.safetensors, generation_config.json and the tokenizer files; a classifier's
    head under transformers' names, its labels and architecture in config.json."""
    head = model.head if isinstance(model, GPT2Classifier) else None
    write_safetensors(state, folder / "model.safetensors", names=head.head_names if head else None)
    extra = {**(head.to_hf_dict() if head else {}), **({METADATA_KEY: metadata} if metadata else {})}
    model.config.save(folder / "config.json", extra=extra or None)
    model = model.transformer if head else model
    # the model's own generation_config.json keys (pad, several eos, ...) are kept over config.json's
    generation = {"bos_token_id": model.config.bos_token_id, "eos_token_id": model.config.eos_token_id,
                  **getattr(model, "generation_config", {})}
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    tokenizer.save_pretrained(folder, model_max_length=model.config.n_positions)


def _writers() -> dict[str, Callable]:
    """Each writable format's writer: (model, its state dict on the CPU, an empty temporary folder,
    tokenizer, metadata) -> the format's files in that folder."""
    from gpt2kit.weights.gguf_file import write_gguf
    from gpt2kit.weights.keras_h5 import write_keras_h5
    from gpt2kit.weights.llmc import write_llmc
    from gpt2kit.weights.mindspore import write_mindspore
    from gpt2kit.weights.nanogpt import write_nanogpt
    from gpt2kit.weights.openai import write_openai

    return {"hf": write_hf, "openai": write_openai, "mindspore": write_mindspore, "gguf": write_gguf,
            "llmc": write_llmc, "nanogpt": write_nanogpt, "keras-h5": write_keras_h5}


def save_model(
    model: GPT2 | GPT2Classifier,
    path: str | Path,
    *,
    tokenizer: Any = None,
    metadata: dict[str, Any] | None = None,
    fmt: str = "hf",
    dtype: torch.dtype | None = None,
    quantize: str | None = None,
) -> Path:
    """Write a model folder in `fmt` (one of WRITABLE; hf: config.json, model.safetensors,
    generation_config.json, tokenizer files). `metadata` goes into config.json (Hugging Face
    folders only): say where the model came from."""
    from gpt2kit.tokenizer import Tokenizer

    check_writable(fmt, quantize)
    if isinstance(model, GPT2Classifier) and fmt != "hf":
        raise WeightsError(f"a classifier is written as a Hugging Face folder only, not {fmt} (which holds language "
                           "models)")
    options = {"quantize": quantize} if quantize else {}
    tokenizer = tokenizer or Tokenizer.from_pretrained()
    state = {k.removeprefix("transformer."): v.detach().to("cpu", dtype or v.dtype)
             for k, v in model.state_dict().items()}
    return atomic_folder(Path(path), lambda tmp: _writers()[fmt](model, state, tmp, tokenizer, metadata, **options))
