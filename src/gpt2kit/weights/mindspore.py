"""MindSpore GPT-2 checkpoints (.ckpt), read without MindSpore.

A .ckpt is a protobuf `Checkpoint { repeated Value value = 1 }`, each
`Value { string tag = 1; TensorProto tensor = 2 }` with
`TensorProto { repeated int64 dims = 1; string tensor_type = 2; bytes tensor_content = 3 }`.
A tensor over 512 MiB is stored as consecutive Values with the same tag, each repeating the
whole shape: their contents join. A file saved with crc_check ends in a 17-byte trailer,
b"crc_num" + the zlib CRC-32 of every byte before it as a 10-byte big-endian integer, which
is verified; string entries of append_dict have tensor_type "str" and are passed over.
Networks of MindSpore's fine-tuning scripts prefix every name (`gpt2.gpt2.`).
MindSpore does not store the head count: it comes from an hparams.json beside the file,
or from the published sizes' embedding widths.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch

from gpt2kit.config import PRESETS, PUBLISHED, GPT2Config
from gpt2kit.errors import WeightsError
from gpt2kit.weights import protobuf as pb
from gpt2kit.weights.files import file_kind
from gpt2kit.weights.layouts import MINDSPORE, DictSource, collect

DTYPES = {"Float32": torch.float32, "Float16": torch.float16, "BFloat16": torch.bfloat16,
          "Float64": torch.float64, "Int32": torch.int32, "Int64": torch.int64, "Int8": torch.int8,
          "UInt8": torch.uint8, "Bool": torch.bool}
HEADS_BY_WIDTH = {PRESETS[n]["n_embd"]: PRESETS[n]["n_head"] for n in PUBLISHED}


def read_ckpt(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint file not found")
    data = path.read_bytes()
    if not data:
        raise WeightsError(f"{path}: empty file, not a MindSpore checkpoint")
    if len(data) >= 17 and data[-17:-10] == b"crc_num":  # saved with crc_check=True
        data, crc = data[:-17], int.from_bytes(data[-10:], "big")
        if zlib.crc32(data) != crc:
            raise WeightsError(f"{path}: CRC mismatch: the checkpoint is damaged (its crc_num trailer does not match "
                               "its contents)")
    try:
        values = pb.parse(data).get(1, [])
        pieces: dict[str, list[tuple[list[int], str, memoryview]]] = {}
        for raw in values:
            v = pb.parse(raw)
            tag = bytes(v[1][-1]).decode("utf-8")
            t = pb.parse(v[2][-1])
            dims = [pb.to_signed(d) for d in pb.packed_varints(t.get(1, []))]
            pieces.setdefault(tag, []).append((dims, bytes(t[2][-1]).decode("utf-8"), t.get(3, [b""])[-1]))
    except (pb.ProtobufError, KeyError, IndexError, UnicodeDecodeError, TypeError):
        raise WeightsError(f"{path}: not a MindSpore checkpoint (not the protobuf it should be)") from None
    if not pieces:
        raise WeightsError(f"{path}: not a MindSpore checkpoint (no tensors found)")
    return {tag: _join(tag, parts, path) for tag, parts in pieces.items() if parts[0][1] != "str"}


def strip_prefix(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the prefix that wrapping networks add (`gpt2.gpt2.`), and what lies outside it."""
    table = MINDSPORE.file_name("wte.weight")
    prefix = next((n[: -len(table)] for n in tensors if n.endswith(table)), "")
    if not prefix:
        return tensors
    return {n[len(prefix):]: t for n, t in tensors.items() if n.startswith(prefix)}


def _join(tag: str, parts: list[tuple[list[int], str, memoryview]], path: Path) -> torch.Tensor:
    kind = parts[0][1]
    if kind not in DTYPES:
        raise WeightsError(f"{path}: tensor '{tag}' has unknown dtype {kind!r}")
    dtype = DTYPES[kind]
    content = b"".join(bytes(p[2]) for p in parts)
    flat = torch.frombuffer(bytearray(content), dtype=dtype) if content else torch.empty(0, dtype=dtype)
    dims = parts[0][0]
    if dims == [0] and flat.numel() == 1:
        return flat.reshape(())  # MindSpore writes a scalar's shape as [0]
    if int(np.prod(dims)) == flat.numel():
        return flat.reshape(dims)
    # pieces that each carry their own shape: they stack along the first axis
    rows = sum(p[0][0] for p in parts if p[0])
    if len(dims) >= 1 and rows * int(np.prod(dims[1:])) == flat.numel():
        return flat.reshape([rows, *dims[1:]])
    raise WeightsError(f"{path}: tensor '{tag}' holds {flat.numel()} values, its shape {dims} needs "
                       f"{int(np.prod(dims))}")


def infer_config(tensors: dict[str, torch.Tensor], path: Path) -> GPT2Config:
    hparams = path.parent / "hparams.json"
    if hparams.is_file():
        return GPT2Config.from_file(hparams)
    try:
        vocab, width = tensors[MINDSPORE.file_name("wte.weight")].shape
        n_ctx = tensors[MINDSPORE.file_name("wpe.weight")].shape[0]
    except (KeyError, ValueError):
        raise WeightsError(f"{path}: no GPT-2 embedding tables (is this a MindSpore GPT-2 checkpoint?)") from None
    layers = {n.split(".")[2] for n in tensors if n.startswith("gpt2_decoder.layers.")}
    if width not in HEADS_BY_WIDTH:
        raise WeightsError(f"{path}: cannot tell the head count of a {width}-wide model; put an hparams.json "
                           "(n_vocab, n_ctx, n_embd, n_head, n_layer) beside the checkpoint")
    return GPT2Config(vocab_size=vocab, n_positions=n_ctx, n_embd=width, n_head=HEADS_BY_WIDTH[width],
                      n_layer=len(layers))


def find_ckpt(path: Path) -> Path:
    if path.is_file():
        return path
    found = sorted(path.glob("*.ckpt"))
    if len(found) > 1:  # other frameworks' files may share the suffix
        found = [p for p in found if file_kind(p) == "mindspore"] or found
    if len(found) != 1:
        raise WeightsError(f"{path}: expected one MindSpore .ckpt file, found {len(found)}")
    return found[0]


def read_mindspore(path: Path, dtype: torch.dtype | None = None) -> tuple[GPT2Config, dict[str, torch.Tensor]]:
    ckpt = find_ckpt(path)
    tensors = strip_prefix(read_ckpt(ckpt))
    config = infer_config(tensors, ckpt)
    config_file = "hparams.json" if (ckpt.parent / "hparams.json").is_file() else "the embedding tables"
    return config, collect(MINDSPORE, DictSource(tensors), config, ckpt, config_file, dtype)


def write_ckpt(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write tensors as a MindSpore checkpoint (used by tests and `gpt2kit convert --to mindspore`)."""
    names = {v: k for k, v in DTYPES.items()}
    out = bytearray()
    for tag, t in tensors.items():
        t = t.detach().to("cpu").contiguous()
        dims = b"".join(pb.field_varint(1, d) for d in t.shape)  # unpacked, as MindSpore writes them
        proto = (dims + pb.field_bytes(2, names[t.dtype].encode())
                 + pb.field_bytes(3, t.reshape(-1).view(torch.uint8).numpy().tobytes()))
        out += pb.field_bytes(1, pb.field_bytes(1, tag.encode()) + pb.field_bytes(2, proto))
    path.write_bytes(bytes(out))


def write_mindspore(model, state: dict[str, torch.Tensor], folder: Path, tokenizer, metadata=None) -> None:
    """A folder MindSpore GPT-2's scripts load (`load_checkpoint` of gpt2.ckpt), with the hparams.json
    that carries its shape (the .ckpt has no head count) and the tokenizer's encoder.json / vocab.bpe."""
    import shutil

    config = model.config
    options = config.non_default_options()
    if options:
        raise WeightsError(f"MindSpore GPT-2 cannot hold {options[0]}: {str(getattr(config, options[0])).lower()} "
                           "(its network has no such option); save this model in the hf format")
    config.save(folder / "hparams.json")
    write_ckpt({name: tensor() for name, tensor in MINDSPORE.export(state).items()}, folder / "gpt2.ckpt")
    shutil.copyfile(tokenizer.vocab_file, folder / "encoder.json")
    shutil.copyfile(tokenizer.merges_file, folder / "vocab.bpe")
