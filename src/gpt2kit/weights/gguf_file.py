"""GGUF files of architecture `gpt2`, as llama.cpp runs them: read and written with the `gguf` package.

A GGUF file holds its hyperparameters and the tokenizer as key/value metadata (`gpt2.block_count`,
`tokenizer.ggml.tokens`, ...) and the tensors under llama.cpp's names (layouts.GGUF), linear
weights [out, in]. Types read: F32, F16, BF16, and Q8_0 (blocks of 32 int8 values with an fp16
scale, dequantized to fp32 on read). Written as llama.cpp's converter (`convert_hf_to_gguf.py`)
writes them, which the tests check against a file it made: F32, F16 or BF16 matrices, the 1-D
tensors (norms, biases) and the position embeddings in F32, the head only when untied (llama.cpp
uses the token embeddings when `output.weight` is absent), and the same metadata keys.

The vocabulary in the metadata must be GPT-2's: gpt2kit's tokenizer is GPT-2's byte-level BPE.
Read and written here with the standard library and numpy (the `gguf` package's reader parses the
50,257 token strings one numpy view at a time: seconds per file).
"""

from __future__ import annotations

import json
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gpt2kit.config import GPT2Config
from gpt2kit.errors import WeightsError
from gpt2kit.weights.layouts import GGUF, HEAD, collect

ARCH = "gpt2"
MAGIC = b"GGUF"
VERSION = 3
ALIGNMENT = 32  # of the data section and of each tensor in it, unless general.alignment says otherwise
FILE_NAME = "model.gguf"  # in a folder written by `gpt2kit convert --to gguf`
# general.file_type as llama.cpp numbers it (LLAMA_FTYPE_*): all F32, mostly F16, mostly BF16, mostly Q8_0
FILE_TYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 32, "q8_0": 7}
QUANTIZED = ("q8_0",)  # what `--dtype` may also say when writing GGUF
# ggml tensor types: name, bytes per block, values per block
F32, F16, Q8_0, BF16 = 0, 1, 8, 30
TENSOR_TYPES = {F32: ("fp32", 4, 1), F16: ("fp16", 2, 1), Q8_0: ("q8_0", 34, 32), BF16: ("bf16", 2, 1)}
TORCH_TYPES = {torch.float32: F32, torch.float16: F16, torch.bfloat16: BF16}
# metadata value types: struct format of the scalars; 8 is a string, 9 an array
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
STRING, ARRAY, UINT32, INT32, FLOAT32 = 8, 9, 4, 5, 6
TOKEN_NORMAL, TOKEN_CONTROL = 1, 3  # tokenizer.ggml.token_type values


def find_gguf(path: Path) -> Path:
    if path.is_file():
        return path
    found = sorted(path.glob("*.gguf"))
    if len(found) != 1:
        raise WeightsError(f"{path}: expected one .gguf file, found {len(found)}")
    return found[0]


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]  # numpy order: [out, in] for matrices (GGUF lists the innermost dimension first)
    kind: int  # ggml type
    offset: int  # from the file's start


class GGUFFile:
    """A GGUF file's metadata and tensor directory, parsed from a memory map (the tensors are read
    only when loaded). Any inconsistency, a truncated file included, is a WeightsError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open("rb") as f:
                self.data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as e:  # an empty file cannot be mapped
            raise WeightsError(f"{path}: cannot read it as a GGUF file ({e})") from None
        if self.data[:4] != MAGIC:
            raise WeightsError(f"{path}: not a GGUF file (it does not start with the GGUF magic)")
        try:
            self._parse()
        except (struct.error, UnicodeDecodeError, ValueError, OverflowError, MemoryError) as e:
            raise WeightsError(f"{path}: damaged or truncated GGUF file ({e})") from None

    def _read(self, fmt: str) -> Any:
        value = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return value[0] if len(value) == 1 else value

    def _string(self) -> str:
        n = self._read("Q")
        if self.pos + n > len(self.data):
            raise ValueError("a string runs past the end of the file")
        text = self.data[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return text

    def _value(self, kind: int) -> Any:
        if kind == STRING:
            return self._string()
        if kind == ARRAY:
            item, count = self._read("I"), self._read("Q")
            if item in SCALARS:  # read at once: arrays of token types run to 50,000 entries
                size = struct.calcsize(SCALARS[item])
                values = list(struct.unpack_from(f"<{count}{SCALARS[item]}", self.data, self.pos))
                self.pos += count * size
                return values
            return [self._value(item) for _ in range(count)]
        if kind not in SCALARS:
            raise ValueError(f"unknown metadata value type {kind}")
        return self._read(SCALARS[kind])

    def _parse(self) -> None:
        self.pos = 4
        version, n_tensors, n_fields = self._read("I"), self._read("Q"), self._read("Q")
        if version not in (2, 3):
            raise WeightsError(f"{self.path}: GGUF version {version}; gpt2kit reads versions 2 and 3")
        self.fields: dict[str, Any] = {}
        for _ in range(n_fields):
            key = self._string()
            self.fields[key] = self._value(self._read("I"))
        raw = []
        for _ in range(n_tensors):
            name, n_dims = self._string(), self._read("I")
            dims = [self._read("Q") for _ in range(n_dims)]
            raw.append((name, tuple(reversed(dims)), self._read("I"), self._read("Q")))
        alignment = int(self.fields.get("general.alignment", ALIGNMENT))
        start = -(-self.pos // alignment) * alignment
        self.tensors: dict[str, TensorInfo] = {}
        for name, shape, kind, offset in raw:
            info = TensorInfo(shape, kind, start + offset)
            if kind in TENSOR_TYPES and info.offset + self.nbytes(info) > len(self.data):
                raise ValueError(f"tensor '{name}' runs past the end of the file ({len(self.data)} bytes)")
            self.tensors[name] = info

    @staticmethod
    def nbytes(info: TensorInfo) -> int:
        _, block_bytes, block_values = TENSOR_TYPES[info.kind]
        return int(np.prod(info.shape)) // block_values * block_bytes

    def type_name(self, name: str) -> str:
        kind = self.tensors[name].kind
        return TENSOR_TYPES[kind][0] if kind in TENSOR_TYPES else f"ggml type {kind}"

    def raw(self, name: str) -> np.ndarray:
        """The tensor's bytes as stored."""
        info = self.tensors[name]
        return np.frombuffer(self.data, np.uint8, self.nbytes(info), info.offset)

    def load(self, name: str) -> torch.Tensor:
        info = self.tensors[name]
        if info.kind not in TENSOR_TYPES:
            raise WeightsError(f"{self.path}: tensor '{name}' has {self.type_name(name)}; gpt2kit reads F32, F16, "
                               "BF16 and Q8_0 (convert the model from its source, or requantize to Q8_0)")
        data = self.raw(name)
        if info.kind == Q8_0:  # blocks of an fp16 scale and 32 int8 values
            blocks = data.view(np.dtype([("scale", "<f2"), ("values", "i1", 32)]))
            values = blocks["values"].astype(np.float32) * blocks["scale"].astype(np.float32)[:, None]
            return torch.from_numpy(values.reshape(info.shape))
        dtype = {F32: torch.float32, F16: torch.float16, BF16: torch.bfloat16}[info.kind]
        return torch.frombuffer(bytearray(data), dtype=dtype).reshape(info.shape)


class GGUFSource:
    """A GGUF file's tensors as a layouts.TensorSource (dequantized when loaded)."""

    def __init__(self, file: GGUFFile) -> None:
        self.file = file

    def names(self) -> list[str]:
        return list(self.file.tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.file.tensors[name].shape

    def load(self, name: str) -> torch.Tensor:
        return self.file.load(name)


def _field(file: GGUFFile, key: str, required: bool = True) -> Any:
    if key not in file.fields and required:
        raise WeightsError(f"{file.path}: no '{key}' in its metadata (not a GGUF of a GPT-2 model?)")
    return file.fields.get(key)


def gguf_config(file: GGUFFile) -> GPT2Config:
    arch = _field(file, "general.architecture")
    if arch != ARCH:
        raise WeightsError(f"{file.path}: a GGUF of architecture '{arch}'; gpt2kit reads GPT-2 models "
                           f"(architecture '{ARCH}')")
    wte = file.tensors.get(GGUF.file_name("wte.weight"))
    if wte is None or len(wte.shape) != 2:
        raise WeightsError(f"{file.path}: no 2-D token_embd.weight tensor")
    vocab, width = wte.shape
    hparams = dict(
        vocab_size=vocab, n_embd=width,
        n_positions=int(_field(file, f"{ARCH}.context_length")),
        n_layer=int(_field(file, f"{ARCH}.block_count")),
        n_head=int(_field(file, f"{ARCH}.attention.head_count")),
        # stored as float32: the shortest decimal of that float32 (1e-05, not 9.99999974e-06)
        layer_norm_epsilon=float(np.format_float_scientific(
            np.float32(_field(file, f"{ARCH}.attention.layer_norm_epsilon")), unique=True)),
        tie_word_embeddings=_tied(file),
    )
    inner = _field(file, f"{ARCH}.feed_forward_length", required=False)
    if inner is not None and int(inner) != 4 * width:
        hparams["n_inner"] = int(inner)
    return GPT2Config(**hparams)


def _tied(file: GGUFFile) -> bool:
    """No head, or one that copies the token embeddings (as converters of tied models may write it)."""
    head, wte = GGUF.file_name(HEAD), GGUF.file_name("wte.weight")
    if head not in file.tensors:
        return True
    a, b = file.tensors[head], file.tensors[wte]
    return (a.kind, a.shape) == (b.kind, b.shape) and np.array_equal(file.raw(head), file.raw(wte))


def gpt2_tokens(tokenizer) -> list[str]:
    """The tokenizer's tokens as byte-level BPE strings, by id."""
    vocab = json.loads(Path(tokenizer.vocab_file).read_text(encoding="utf-8"))
    tokens = sorted(vocab, key=vocab.get)
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise WeightsError(f"{tokenizer.vocab_file}: token ids are not 0..{len(tokens) - 1}")
    return tokens


def check_vocabulary(file: GGUFFile) -> None:
    """The file's tokens must be GPT-2's, in GPT-2's order (the tokenizer gpt2kit will use)."""
    from gpt2kit.tokenizer import Tokenizer

    model, tokens = file.fields.get("tokenizer.ggml.model"), file.fields.get("tokenizer.ggml.tokens")
    if model is None and tokens is None:
        return  # weights only: GPT-2's tokenizer is assumed, as for a bare checkpoint
    ours = gpt2_tokens(Tokenizer.from_pretrained())
    if model != "gpt2" or not isinstance(tokens, list) or tokens[: len(ours)] != ours:
        raise WeightsError(f"{file.path}: its tokenizer ({model!r}, {len(tokens or [])} tokens) is not GPT-2's "
                           "byte-level BPE vocabulary, which gpt2kit's tokenizer is")


def read_gguf(path: Path, dtype: torch.dtype | None = None) -> tuple[GPT2Config, dict[str, torch.Tensor]]:
    file = GGUFFile(find_gguf(path))
    config = gguf_config(file)
    check_vocabulary(file)
    return config, collect(GGUF, GGUFSource(file), config, file.path, "its metadata", dtype)


def describe_gguf(path: Path) -> tuple[GPT2Config, set[str]]:
    """The config and the tensors' types (fp32, fp16, bf16, q8_0) of a GGUF file, for `gpt2kit info`."""
    file = GGUFFile(find_gguf(path))
    return gguf_config(file), {file.type_name(name) for name in file.tensors}


class _Writer:
    """GGUF version 3, little-endian: header, metadata, tensor directory, aligned data."""

    def __init__(self) -> None:
        self.fields: list[bytes] = []
        self.tensors: list[tuple[str, int, tuple[int, ...], bytes]] = []

    @staticmethod
    def _string(text: str) -> bytes:
        raw = text.encode("utf-8")
        return struct.pack("<Q", len(raw)) + raw

    def _value(self, kind: int, value: Any) -> bytes:
        if kind == STRING:
            return self._string(value)
        return struct.pack("<" + SCALARS[kind], value)

    def add(self, key: str, kind: int, value: Any) -> None:
        self.fields.append(self._string(key) + struct.pack("<I", kind) + self._value(kind, value))

    def add_array(self, key: str, kind: int, values: list) -> None:
        if kind == STRING:
            body = b"".join(self._string(v) for v in values)
        else:
            body = struct.pack(f"<{len(values)}{SCALARS[kind]}", *values)
        self.fields.append(self._string(key) + struct.pack("<IIQ", ARRAY, kind, len(values)) + body)

    def add_tensor(self, name: str, tensor: torch.Tensor, q8_0: bool = False) -> None:
        t = tensor.detach().to("cpu").contiguous()
        data = quantize_q8_0(t) if q8_0 else t.reshape(-1).view(torch.uint8).numpy().tobytes()
        self.tensors.append((name, Q8_0 if q8_0 else TORCH_TYPES[t.dtype], tuple(t.shape), data))

    def write(self, path: Path) -> None:
        def pad(n: int) -> int:
            return -n % ALIGNMENT

        with path.open("wb") as f:
            f.write(MAGIC + struct.pack("<IQQ", VERSION, len(self.tensors), len(self.fields)))
            for field in self.fields:
                f.write(field)
            offset = 0
            for name, kind, shape, data in self.tensors:
                f.write(self._string(name) + struct.pack("<I", len(shape)))
                f.write(struct.pack(f"<{len(shape)}Q", *reversed(shape)) + struct.pack("<IQ", kind, offset))
                offset += len(data) + pad(len(data))
            f.write(b"\0" * pad(f.tell()))
            for _, _, _, data in self.tensors:
                f.write(data + b"\0" * pad(len(data)))


def quantize_q8_0(t: torch.Tensor) -> bytes:
    """ggml's Q8_0 blocks of a tensor whose rows are a multiple of 32 long: per 32 values, an fp16 scale
    (the largest magnitude / 127) and the values / scale rounded half away from zero, as int8."""
    blocks = t.float().reshape(-1, 32).numpy()
    scale = np.abs(blocks).max(axis=1, keepdims=True) / 127
    with np.errstate(divide="ignore"):
        inverse = np.where(scale == 0, 0, 1 / scale)
    scaled = blocks * inverse
    values = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    packed = np.empty(len(blocks), np.dtype([("scale", "<f2"), ("values", "i1", 32)]))
    packed["scale"], packed["values"] = scale[:, 0].astype(np.float16), values.astype(np.int8)
    return packed.tobytes()


def write_gguf(model, state: dict[str, torch.Tensor], folder: Path, tokenizer, metadata=None,
               quantize: str | None = None) -> None:
    """`model.gguf` for llama.cpp: hyperparameters, GPT-2's tokenizer and the weights in the state's dtype
    (or, quantize "q8_0", the matrices in Q8_0), keys, types and tensors as llama.cpp's converter writes them."""
    config = model.config
    unsupported = [o for o in config.non_default_options() if o != "tie_word_embeddings"]
    if unsupported:
        raise WeightsError(f"llama.cpp's gpt2 architecture cannot hold {unsupported[0]}: "
                           f"{str(getattr(config, unsupported[0])).lower()}; save this model in the hf format")
    dtype = next(iter(state.values())).dtype
    if dtype not in FILE_TYPES:
        raise WeightsError(f"GGUF is written in fp32, fp16 or bf16, not {str(dtype).removeprefix('torch.')}")
    if quantize not in (None, *QUANTIZED):
        raise WeightsError(f"GGUF is quantized to {', '.join(QUANTIZED)}, not {quantize}")
    if quantize and config.n_embd % 32:
        raise WeightsError(f"Q8_0 quantizes rows in blocks of 32 values; this model's width {config.n_embd} is not a "
                           "multiple of 32 (write fp16 instead)")
    w = _Writer()
    w.add("general.architecture", STRING, ARCH)
    w.add("general.type", STRING, "model")
    w.add("general.name", STRING, "gpt2kit model")
    for key, value in (("block_count", config.n_layer), ("context_length", config.n_positions),
                       ("embedding_length", config.n_embd), ("feed_forward_length", config.inner_dim),
                       ("attention.head_count", config.n_head)):
        w.add(f"{ARCH}.{key}", UINT32, value)
    w.add(f"{ARCH}.attention.layer_norm_epsilon", FLOAT32, config.layer_norm_epsilon)
    w.add("general.file_type", UINT32, FILE_TYPES[quantize or dtype])
    w.add("general.quantization_version", UINT32, 2)
    tokens = gpt2_tokens(tokenizer)
    if len(tokens) != config.vocab_size:
        raise WeightsError(f"the tokenizer has {len(tokens)} tokens, the model's vocabulary {config.vocab_size}: "
                           "GGUF stores one token per embedding row")
    merges = [line for line in Path(tokenizer.merges_file).read_text(encoding="utf-8").splitlines()
              if line and not line.startswith("#version")]
    w.add("tokenizer.ggml.model", STRING, "gpt2")
    w.add("tokenizer.ggml.pre", STRING, "gpt-2")
    w.add_array("tokenizer.ggml.tokens", STRING, tokens)
    w.add_array("tokenizer.ggml.token_type", INT32,
                [TOKEN_CONTROL if t.startswith("<|") and t.endswith("|>") else TOKEN_NORMAL for t in tokens])
    w.add_array("tokenizer.ggml.merges", STRING, merges)
    for key in ("bos", "eos", "unknown"):  # GPT-2 has one special token; the converter names it for all three
        w.add(f"tokenizer.ggml.{key}_token_id", UINT32, config.eos_token_id if key != "bos" else config.bos_token_id)
    for name, tensor in GGUF.export(state).items():
        t = tensor()
        if t.dim() == 1 or name == GGUF.file_name("wpe.weight"):  # as the converter leaves them: F32
            t = t.float()
        w.add_tensor(name, t, q8_0=quantize == "q8_0" and t.dim() == 2 and name != GGUF.file_name("wpe.weight"))
    w.write(folder / FILE_NAME)
