"""gpt-tf2's Keras HDF5 models (LambdaColdStorage/gpt-tf2-keras): `<name>.h5` read and written (h5py).

gpt-tf2's finetune.py saves the whole Keras model: weights under `model_weights/<layer>/`, each layer
group listing its datasets in a `weight_names` attribute (`<layer>/<weight>`, with `:0` from Keras 2),
`model_weights` listing the layers in `layer_names`. Keras splits an attribute over 64 KB into
`name0`, `name1`, ...; both are read. `optimizer_weights/` (older gpt-tf2) is not read.

Layer names: Embed-Token, Embed-Token-Pos, Encode-<i>-MultiHeadAtt(-Norm), Encode-<i>-FeedForward(-Norm),
Norm; the output layer reuses the token embeddings (tied) and has no weights. The attention holds q, k
and v as three [in, out] matrices where GPT-2 has one c_attn: they are joined on read and split on
write, under a name of ours (`..._Wqkv`) no file holds.

The .h5 holds no hyperparameters: gpt-tf2 is given OpenAI's hparams.json, which must sit beside the
file. Its LayerNormalization runs with epsilon K.epsilon()**2 = 1e-14, not GPT-2's 1e-5, so a model
read from a .h5 gets 1e-14, unless hparams.json says otherwise in `layer_norm_epsilon`: gpt2kit writes
that key (gpt-tf2 ignores it), so its own models read back computing as they did. HDF5 has no
bfloat16: bf16 weights are written as fp32, which holds them exactly.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gpt2kit.config import GPT2Config, read_json
from gpt2kit.errors import WeightsError
from gpt2kit.extras import require
from gpt2kit.weights.files import file_kind
from gpt2kit.weights.layouts import KERAS, DictSource, collect

FILE_NAME = "model.h5"  # in a folder written by `gpt2kit convert --to keras-h5`
EPSILON = 1e-14  # gpt-tf2's LayerNormalization: K.epsilon() ** 2
QKV = ("Wq", "Wk", "Wv"), ("bq", "bk", "bv")
# the order of gpt-tf2's attention weights: Keras's load_weights without by_name pairs them by position
ATTENTION_ORDER = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")
LOOKED_FOR = "Embed-Token, Embed-Token-Pos, Encode-<i>-MultiHeadAtt, Encode-<i>-FeedForward, Norm"


def _h5py() -> Any:
    return require("h5py", "keras", "reading and writing Keras .h5 models")


def find_h5(path: Path) -> Path:
    if path.is_file():
        return path
    found = [p for p in sorted(path.glob("*.h5")) if file_kind(p) == "hdf5"]
    if len(found) != 1:
        names = ", ".join(p.name for p in found)
        raise WeightsError(f"{path}: expected one Keras .h5 model file, found {len(found)}"
                           f"{f' ({names}): name one' if found else ''}")
    return found[0]


def h5_config(file: Path, config_file: Path | None = None) -> GPT2Config:
    """The config of `config_file`, else of the hparams.json beside the .h5; epsilon gpt-tf2's unless
    the file names one."""
    hparams = Path(config_file) if config_file is not None else file.parent / "hparams.json"
    if not hparams.is_file():
        if config_file is not None:
            raise WeightsError(f"{hparams}: no such file (--config names the hparams.json gpt-tf2 was given)")
        raise WeightsError(f"{file}: no hparams.json beside it (a Keras .h5 holds no model shape; put the model's "
                           "hparams.json, the one gpt-tf2 was given, in the same folder, or name it with --config)")
    raw = read_json(hparams)
    config = GPT2Config.from_hparams(raw, source=str(hparams))
    epsilon = raw.get("layer_norm_epsilon", EPSILON)
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or not epsilon > 0:
        raise WeightsError(f"{hparams}: layer_norm_epsilon must be a positive number, got {epsilon!r}")
    return dataclasses.replace(config, layer_norm_epsilon=float(epsilon))


def _attr_list(group: Any, name: str) -> list[str] | None:
    if name in group.attrs:
        values = list(group.attrs[name])
    elif f"{name}0" in group.attrs:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values += list(group.attrs[f"{name}{i}"])
            i += 1
    else:
        return None
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def read_arrays(file: Path) -> dict[str, np.ndarray]:
    """Every weight of the file's layers as `<layer>/<weight>` (`:0` dropped), q, k, v joined."""
    h5py = _h5py()
    arrays: dict[str, np.ndarray] = {}
    try:
        with h5py.File(file, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f  # save_weights files have no model_weights
            layers = _attr_list(root, "layer_names") or list(root)
            for layer in layers:
                group = root.get(layer)
                if not isinstance(group, h5py.Group):
                    continue
                weights = _attr_list(group, "weight_names")
                if weights is None:  # not written by Keras: the datasets themselves
                    weights = _datasets(group, h5py)
                for weight in weights:
                    leaf = weight.rsplit("/", 1)[-1].removesuffix(":0")
                    arrays[f"{layer}/{leaf}"] = group[weight][()]
    except (OSError, KeyError, ValueError) as err:
        raise WeightsError(f"{file}: not a readable HDF5 model ({str(err).splitlines()[0]})") from None
    if "Embed-Token/embeddings" not in arrays:
        raise WeightsError(f"{file}: an HDF5 file without gpt-tf2's GPT-2 layers (looked for {LOOKED_FOR})")
    return _join_qkv(arrays)


def _datasets(group: Any, h5py: Any) -> list[str]:
    found: list[str] = []
    group.visititems(lambda name, item: found.append(name) if isinstance(item, h5py.Dataset) else None)
    return found


def _join_qkv(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(arrays)
    for name in [n for n in arrays if n.endswith("_Wq")]:
        stem = name.removesuffix("_Wq")
        for parts, joined in zip(QKV, ("_Wqkv", "_bqkv"), strict=True):
            keys = [f"{stem}_{p}" for p in parts]
            if all(k in out for k in keys):
                out[stem + joined] = np.concatenate([out.pop(k) for k in keys], axis=-1)
    return out


def read_keras_h5(path: Path, dtype: torch.dtype | None = None,
                  config_file: Path | None = None) -> tuple[GPT2Config, dict[str, torch.Tensor]]:
    file = find_h5(path)
    config = h5_config(file, config_file)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in read_arrays(file).items()}
    return config, collect(KERAS, DictSource(tensors), config, file, config_file or "hparams.json", dtype)


def describe_h5(path: Path, config_file: Path | None = None) -> tuple[GPT2Config, set[str]]:
    """Config and stored dtypes (for `gpt2kit info`)."""
    file = find_h5(path)
    config = h5_config(file, config_file)
    dtypes = {str(a.dtype).replace("float", "fp") for a in read_arrays(file).values()}
    return config, dtypes


def write_keras_h5(model: Any, state: dict[str, torch.Tensor], folder: Path, tokenizer: Any,
                   metadata: Any = None) -> None:
    """model.h5 laid out as Keras saves a model (so `load_weights(..., by_name=True)` finds each layer's
    weights), hparams.json (with our layer_norm_epsilon), encoder.json and vocab.bpe."""
    config = model.config
    departures = [d for d in config.departures() if not d.startswith("layer_norm_epsilon")]
    if departures:
        raise WeightsError(f"gpt-tf2's Keras model cannot hold {departures[0]} (hparams.json has no such key); "
                           "save this model in the hf format")
    h5py = _h5py()
    layers: dict[str, list[tuple[str, np.ndarray]]] = {}
    for name, value in KERAS.export(state).items():
        t = value()
        t = t.float() if t.dtype == torch.bfloat16 else t
        layer, leaf = name.split("/")
        for part, array in _split_qkv(leaf, t.numpy()):
            layers.setdefault(layer, []).append((part, array))
    for weights in layers.values():
        weights.sort(key=lambda w: ATTENTION_ORDER.index(w[0][-2:]) if w[0][-2:] in ATTENTION_ORDER else 0)
    with h5py.File(folder / FILE_NAME, "w") as f:
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "2.3.1"  # gpt-tf2's era; tells Keras 3 to read the legacy layout
        root = f.create_group("model_weights")
        root.attrs["backend"] = "tensorflow"
        root.attrs["keras_version"] = "2.3.1"
        root.attrs["layer_names"] = [n.encode() for n in layers]
        for layer, weights in layers.items():
            group = root.create_group(layer)
            group.attrs["weight_names"] = [f"{layer}/{leaf}:0".encode() for leaf, _ in weights]
            for leaf, array in weights:
                group.create_dataset(f"{layer}/{leaf}:0", data=array)
    hparams = {**config.to_hparams(), "layer_norm_epsilon": config.layer_norm_epsilon}
    (folder / "hparams.json").write_text(json.dumps(hparams, indent=2) + "\n")
    shutil.copyfile(tokenizer.vocab_file, folder / "encoder.json")
    shutil.copyfile(tokenizer.merges_file, folder / "vocab.bpe")


def _split_qkv(leaf: str, array: np.ndarray) -> list[tuple[str, np.ndarray]]:
    for parts, joined in zip(QKV, ("_Wqkv", "_bqkv"), strict=True):
        if leaf.endswith(joined):
            stem = leaf.removesuffix(joined)
            return [(f"{stem}_{p}", np.ascontiguousarray(a)) for p, a in
                    zip(parts, np.split(array, 3, axis=-1), strict=True)]
    return [(leaf, array)]
