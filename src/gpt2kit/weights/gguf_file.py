"""GGUF files of architecture `gpt2`, as llama.cpp runs them: read and written with the `gguf` package.

A GGUF file holds its hyperparameters and the tokenizer as key/value metadata (`gpt2.block_count`,
`tokenizer.ggml.tokens`, ...) and the tensors under llama.cpp's names (layouts.GGUF), linear
weights [out, in]. Types read: F32, F16, BF16, and Q8_0 (blocks of 32 int8 values with an fp16
scale, dequantized to fp32 on read). Written: F32, F16 or BF16 matrices, with the 1-D tensors
(norms, biases) in F32 as llama.cpp's converter leaves them, and the head only when untied
(llama.cpp uses the token embeddings when `output.weight` is absent).

The vocabulary in the metadata must be GPT-2's: gpt2kit's tokenizer is GPT-2's byte-level BPE.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gpt2kit.config import GPT2Config
from gpt2kit.errors import WeightsError
from gpt2kit.extras import require
from gpt2kit.weights.layouts import GGUF, HEAD, collect

ARCH = "gpt2"
MAGIC = b"GGUF"
FILE_NAME = "model.gguf"  # in a folder written by `gpt2kit convert --to gguf`
# general.file_type as llama.cpp numbers it (LLAMA_FTYPE_*): all F32, mostly F16, mostly Q8_0, mostly BF16
FILE_TYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 32}


def _gguf():
    return require("gguf", "gguf", "reading and writing GGUF files")


def find_gguf(path: Path) -> Path:
    if path.is_file():
        return path
    found = sorted(path.glob("*.gguf"))
    if len(found) != 1:
        raise WeightsError(f"{path}: expected one .gguf file, found {len(found)}")
    return found[0]


class GGUFSource:
    """A GGUF file's tensors (numpy order, i.e. [out, in] for matrices), dequantized when loaded."""

    def __init__(self, reader: Any, path: Path) -> None:
        self.reader, self.path = reader, path
        self.tensors = {t.name: t for t in reader.tensors}

    def names(self) -> list[str]:
        return list(self.tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(n) for n in reversed(self.tensors[name].shape))  # GGUF lists the innermost first

    def load(self, name: str) -> torch.Tensor:
        gguf = _gguf()
        t = self.tensors[name]
        kind = gguf.GGMLQuantizationType
        shape = self.shape(name)
        if t.tensor_type == kind.F32:
            return torch.from_numpy(np.array(t.data, dtype=np.float32).reshape(shape))
        if t.tensor_type == kind.F16:
            return torch.from_numpy(np.array(t.data, dtype=np.float16).reshape(shape))
        if t.tensor_type == kind.BF16:
            return torch.from_numpy(np.array(t.data).view(np.int16).reshape(shape)).view(torch.bfloat16)
        if t.tensor_type == kind.Q8_0:
            return torch.from_numpy(np.ascontiguousarray(gguf.quants.dequantize(t.data, t.tensor_type)).reshape(shape))
        raise WeightsError(f"{self.path}: tensor '{name}' has type {t.tensor_type.name}; gpt2kit reads F32, F16, "
                           "BF16 and Q8_0 (requantize with llama.cpp's llama-quantize, or convert from the source)")


def _field(reader: Any, key: str, path: Path, required: bool = True) -> Any:
    field = reader.fields.get(key)
    if field is None:
        if required:
            raise WeightsError(f"{path}: no '{key}' in its metadata (not a GGUF of a GPT-2 model?)")
        return None
    return field.contents()


def open_reader(path: Path) -> Any:
    gguf = _gguf()
    try:
        with path.open("rb") as f:
            if f.read(4) != MAGIC:
                raise WeightsError(f"{path}: not a GGUF file (it does not start with the GGUF magic)")
        return gguf.GGUFReader(path)
    except WeightsError:
        raise
    except (ValueError, OSError, IndexError, KeyError, UnicodeDecodeError) as e:
        raise WeightsError(f"{path}: damaged or truncated GGUF file ({e})") from None


def gguf_config(reader: Any, path: Path) -> GPT2Config:
    arch = _field(reader, "general.architecture", path)
    if arch != ARCH:
        raise WeightsError(f"{path}: a GGUF of architecture '{arch}'; gpt2kit reads GPT-2 models "
                           f"(architecture '{ARCH}')")
    tensors = {t.name: t for t in reader.tensors}
    if "token_embd.weight" not in tensors:
        raise WeightsError(f"{path}: no token_embd.weight tensor")
    width, vocab = (int(n) for n in tensors["token_embd.weight"].shape)
    hparams = dict(
        vocab_size=vocab, n_embd=width,
        n_positions=int(_field(reader, f"{ARCH}.context_length", path)),
        n_layer=int(_field(reader, f"{ARCH}.block_count", path)),
        n_head=int(_field(reader, f"{ARCH}.attention.head_count", path)),
        # stored as float32: the shortest decimal of that float32 (1e-05, not 9.99999974e-06)
        layer_norm_epsilon=float(np.format_float_scientific(
            np.float32(_field(reader, f"{ARCH}.attention.layer_norm_epsilon", path)), unique=True)),
        tie_word_embeddings=GGUF.file_name(HEAD) not in tensors or _same(tensors, path),
    )
    inner = _field(reader, f"{ARCH}.feed_forward_length", path, required=False)
    if inner is not None and int(inner) != 4 * width:
        hparams["n_inner"] = int(inner)
    return GPT2Config(**hparams)


def _same(tensors: dict[str, Any], path: Path) -> bool:
    """A head that copies the token embeddings (as converters of tied models may write it) is tied."""
    head, wte = tensors[GGUF.file_name(HEAD)], tensors["token_embd.weight"]
    return head.tensor_type == wte.tensor_type and np.array_equal(np.asarray(head.data), np.asarray(wte.data))


def check_vocabulary(reader: Any, path: Path) -> None:
    """The file's tokens must be GPT-2's, in GPT-2's order (the tokenizer gpt2kit will use)."""
    from gpt2kit.tokenizer import Tokenizer

    model = _field(reader, "tokenizer.ggml.model", path, required=False)
    tokens = _field(reader, "tokenizer.ggml.tokens", path, required=False)
    if model is None and tokens is None:
        return  # weights only: GPT-2's tokenizer is assumed, as for a bare checkpoint
    vocab = json.loads(Tokenizer.from_pretrained().vocab_file.read_text(encoding="utf-8"))
    ours = sorted(vocab, key=vocab.get)
    if model != "gpt2" or list(tokens or [])[: len(ours)] != ours:
        raise WeightsError(f"{path}: its tokenizer ({model!r}, {len(tokens or [])} tokens) is not GPT-2's byte-level "
                           "BPE vocabulary, which gpt2kit's tokenizer is")


def read_gguf(path: Path, dtype: torch.dtype | None = None) -> tuple[GPT2Config, dict[str, torch.Tensor]]:
    file = find_gguf(path)
    reader = open_reader(file)
    config = gguf_config(reader, file)
    check_vocabulary(reader, file)
    return config, collect(GGUF, GGUFSource(reader, file), config, file, "its metadata", dtype)


def gguf_dtype_names(path: Path) -> set[str]:
    """The types of a GGUF file's tensors, as `gpt2kit info` shows them (f32, f16, bf16, q8_0)."""
    reader = open_reader(find_gguf(path))
    return {t.tensor_type.name.lower() for t in reader.tensors}


def write_gguf(model, state: dict[str, torch.Tensor], folder: Path, tokenizer, metadata=None) -> None:
    """`model.gguf` for llama.cpp: hyperparameters, GPT-2's tokenizer and the weights in the state's dtype."""
    gguf = _gguf()
    config = model.config
    unsupported = [o for o in config.non_default_options() if o != "tie_word_embeddings"]
    if unsupported:
        raise WeightsError(f"llama.cpp's gpt2 architecture cannot hold {unsupported[0]}: "
                           f"{str(getattr(config, unsupported[0])).lower()}; save this model in the hf format")
    dtype = next(iter(state.values())).dtype
    if dtype not in FILE_TYPES:
        raise WeightsError(f"GGUF is written in fp32, fp16 or bf16, not {str(dtype).removeprefix('torch.')}")
    writer = gguf.GGUFWriter(folder / FILE_NAME, ARCH)
    writer.add_name(getattr(model, "name_or_path", None) or "gpt2kit model")
    writer.add_block_count(config.n_layer)
    writer.add_context_length(config.n_positions)
    writer.add_embedding_length(config.n_embd)
    writer.add_feed_forward_length(config.inner_dim)
    writer.add_head_count(config.n_head)
    writer.add_layer_norm_eps(config.layer_norm_epsilon)
    writer.add_file_type(FILE_TYPES[dtype])
    _add_tokenizer(writer, tokenizer, config)
    for name, tensor in GGUF.export(state).items():
        t = tensor()
        if t.dim() == 1 or t.dtype == torch.float32:  # norms and biases stay F32, as llama.cpp expects
            writer.add_tensor(name, t.float().numpy())
        elif t.dtype == torch.float16:
            writer.add_tensor(name, t.numpy())
        else:  # bf16: numpy has no such dtype; the raw 16-bit words with their GGUF type
            writer.add_tensor(name, t.view(torch.int16).numpy().view(np.uint16), raw_dtype=gguf.GGMLQuantizationType.BF16)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _add_tokenizer(writer: Any, tokenizer, config: GPT2Config) -> None:
    gguf = _gguf()
    vocab = json.loads(Path(tokenizer.vocab_file).read_text(encoding="utf-8"))
    tokens = sorted(vocab, key=vocab.get)
    if len(tokens) != config.vocab_size or [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise WeightsError(f"the tokenizer has {len(tokens)} tokens, the model's vocabulary {config.vocab_size}: "
                           "GGUF stores one token per embedding row")
    merges = [line for line in Path(tokenizer.merges_file).read_text(encoding="utf-8").splitlines()
              if line and not line.startswith("#version")]
    special = {i for t, i in vocab.items() if t.startswith("<|") and t.endswith("|>")}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL
                            for i in range(len(tokens))])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(config.bos_token_id)
    writer.add_eos_token_id(config.eos_token_id)
