"""llm.c's GPT-2 files (karpathy/llm.c): `model.bin` read and written, `gpt2_tokenizer.bin` written.

model.bin is a header of 256 little-endian int32 ([0] magic 20240326, [1] version: 3 fp32, 5 bf16,
[2] block size, [3] vocabulary, [4] layers, [5] heads, [6] width, [7] padded vocabulary Vp), then
the tensors back to back in layouts.OURS order, each stacked over the layers, linear weights
[out, in]. wte has Vp rows (the vocabulary rounded up to a multiple of 128, zero past it) so that
llm.c's kernels work on aligned sizes; they are dropped on read. Nothing else is stored: llm.c's
network is GPT-2's with a tied head and no options, so a model with any is refused on write.

gpt2_tokenizer.bin is 256 int32 ([0] magic 20240328, [1] version 2, [2] tokens, [3] the
end-of-text id), then each token's bytes as a uint8 length and the bytes. It is not read: the
vocabulary is GPT-2's, which gpt2kit ships.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from gpt2kit.config import GPT2Config
from gpt2kit.errors import ConfigError, WeightsError
from gpt2kit.weights.files import LLMC_MAGIC, LLMC_TOKENIZER_MAGIC, file_kind
from gpt2kit.weights.layouts import LLMC, OURS, DictSource, collect, expected_shapes

HEADER_INTS = 256
HEADER_BYTES = 4 * HEADER_INTS
VERSIONS = {3: torch.float32, 5: torch.bfloat16}
FILE_NAME = "model.bin"  # in a folder written by `gpt2kit convert --to llmc`
TOKENIZER_FILE = "gpt2_tokenizer.bin"
TOKENIZER_VERSION = 2
PAD_MULTIPLE = 128


@dataclass(frozen=True)
class Header:
    config: GPT2Config
    dtype: torch.dtype
    padded_vocab: int


def padded_vocab(vocab_size: int) -> int:
    return math.ceil(vocab_size / PAD_MULTIPLE) * PAD_MULTIPLE


def stacked_shapes(config: GPT2Config, padded: int) -> list[tuple[str, tuple[int, ...]]]:
    """The file's tensors in order: (our name, with "{}" for the layer; shape stacked over layers)."""
    one = expected_shapes(config)
    shapes = [(t, (config.n_layer, *one[t.format(0)]) if "{}" in t else one[t]) for t in OURS]
    shapes[0] = ("wte.weight", (padded, config.n_embd))
    return shapes


def read_header(path: Path) -> Header:
    """The config and dtype a model.bin's header gives, checked against the file's size."""
    with path.open("rb") as f:
        raw = f.read(HEADER_BYTES)
    if len(raw) < HEADER_BYTES:
        raise WeightsError(f"{path}: truncated llm.c model file: {len(raw)} bytes, expected a header of "
                           f"{HEADER_BYTES} and the tensors after it")
    h = struct.unpack(f"<{HEADER_INTS}i", raw)
    if h[0] != LLMC_MAGIC:
        raise WeightsError(f"{path}: not an llm.c model file (magic number {h[0]}, expected {LLMC_MAGIC})")
    if h[1] not in VERSIONS:
        raise WeightsError(f"{path}: llm.c model file version {h[1]}; gpt2kit reads versions 3 (fp32) and 5 (bf16)")
    block, vocab, layers, heads, width, padded = h[2:8]
    try:
        config = GPT2Config(vocab_size=vocab, n_positions=block, n_embd=width, n_layer=layers, n_head=heads)
    except ConfigError as err:
        raise WeightsError(f"{path}: its header's sizes are no model: {str(err).removeprefix('config: ')}") from None
    if padded < vocab:
        raise WeightsError(f"{path}: its header's padded vocabulary {padded} is smaller than the vocabulary {vocab}")
    dtype = VERSIONS[h[1]]
    values = sum(math.prod(shape) for _, shape in stacked_shapes(config, padded))
    expected, actual = HEADER_BYTES + values * dtype.itemsize, path.stat().st_size
    if actual != expected:
        raise WeightsError(f"{path}: {'truncated: ' if actual < expected else ''}{actual} bytes, expected {expected} "
                           f"(header + {values} {'fp32' if dtype == torch.float32 else 'bf16'} values of its sizes)")
    return Header(config, dtype, padded)


def read_tensors(path: Path, header: Header) -> dict[str, torch.Tensor]:
    """Each layer's slice of the stacked tensors, under our names; wte without its padded rows."""
    words = np.fromfile(path, dtype="<f4" if header.dtype == torch.float32 else "<i2", offset=HEADER_BYTES)
    flat = torch.from_numpy(words).view(header.dtype)  # bf16: numpy has none; the 16-bit words reinterpreted
    tensors: dict[str, torch.Tensor] = {}
    pos = 0
    for template, shape in stacked_shapes(header.config, header.padded_vocab):
        n = math.prod(shape)
        t = flat[pos:pos + n].reshape(shape)
        pos += n
        if "{}" in template:
            tensors.update({template.format(i): t[i] for i in range(header.config.n_layer)})
        else:
            tensors[template] = t
    tensors["wte.weight"] = tensors["wte.weight"][: header.config.vocab_size]
    return tensors


def find_llmc(path: Path) -> Path:
    """The model file: `path` itself, or the one llm.c model among a folder's .bin files (llm.c's own
    folders also hold gpt2_tokenizer.bin and debug-state files, which are no models)."""
    if path.is_file():
        return path
    found = [p for p in sorted(path.glob("*.bin")) if file_kind(p) == "llmc"]
    if len(found) == 1:
        return found[0]
    if not found and (path / FILE_NAME).is_file():
        return path / FILE_NAME  # not llm.c's magic: its reader says what it holds
    names = ", ".join(p.name for p in found)
    raise WeightsError(f"{path}: expected one llm.c model .bin file, found {len(found)}"
                       f"{f' ({names}): name one' if found else ''}")


def read_llmc(path: Path, dtype: torch.dtype | None = None) -> tuple[GPT2Config, dict[str, torch.Tensor]]:
    file = find_llmc(path)
    header = read_header(file)
    return header.config, collect(LLMC, DictSource(read_tensors(file, header)), header.config, file,
                                  "its header", dtype)


def _write(f: BinaryIO, t: torch.Tensor) -> None:
    f.write(t.detach().contiguous().reshape(-1).view(torch.uint8).numpy())  # buffer protocol: no extra copy


def write_llmc(model: Any, state: dict[str, torch.Tensor], folder: Path, tokenizer: Any, metadata: Any = None) -> None:
    """model.bin (version 3 for fp32, 5 for bf16) and gpt2_tokenizer.bin, as llm.c's train_gpt2 reads them."""
    config = model.config
    departures = config.departures()
    if departures:
        raise WeightsError(f"llm.c's GPT-2 cannot hold {departures[0]} (its network has no options); "
                           "save this model in the hf format")
    dtype = next(iter(state.values())).dtype
    version = next((v for v, d in VERSIONS.items() if d == dtype), None)
    if version is None:
        raise WeightsError(f"llm.c stores weights in fp32 or bf16, not {str(dtype).removeprefix('torch.')} "
                           "(pass --dtype fp32 or --dtype bf16)")
    padded = padded_vocab(config.vocab_size)
    header = np.zeros(HEADER_INTS, "<i4")
    header[:8] = [LLMC_MAGIC, version, config.n_positions, config.vocab_size, config.n_layer, config.n_head,
                  config.n_embd, padded]
    tensors = LLMC.export(state)
    with (folder / FILE_NAME).open("wb") as f:
        f.write(header.tobytes())
        for template in OURS:
            for name in [template.format(i) for i in range(config.n_layer)] if "{}" in template else [template]:
                _write(f, tensors[name]().to(dtype))
            if template == "wte.weight":
                _write(f, torch.zeros(padded - config.vocab_size, config.n_embd, dtype=dtype))
    write_tokenizer(tokenizer, config.eos_token_id, folder / TOKENIZER_FILE)


def write_tokenizer(tokenizer: Any, eot: int, path: Path) -> None:
    """gpt2_tokenizer.bin: llm.c decodes sampled ids with it (each token's raw bytes)."""
    header = np.zeros(HEADER_INTS, "<i4")
    header[:4] = [LLMC_TOKENIZER_MAGIC, TOKENIZER_VERSION, tokenizer.vocab_size, eot]
    body = bytearray(header.tobytes())
    for i in range(tokenizer.vocab_size):
        token = tokenizer.token_bytes(i)
        if len(token) > 255:  # one uint8 holds the length
            raise WeightsError(f"token {i} is {len(token)} bytes long; llm.c's tokenizer file holds at most 255")
        body += bytes([len(token)]) + token
    path.write_bytes(bytes(body))
