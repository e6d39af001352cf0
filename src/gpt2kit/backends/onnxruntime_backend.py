"""The ONNX Runtime backend: a folder written by `gpt2kit export onnx` (the decoder graph), run on
the CPU through the `Decoder` interface, so generation, beam search and scoring run on it unchanged.

The graph takes the past keys/values as inputs and returns them extended by the new tokens
(present). A graph that says it takes its past as a buffer (the fused graph, export/fused.py) gets
PyTorch's preallocated KVCache, bound as both past and present, so ONNX Runtime writes each step's
keys and values in place; for others the cache is the last present values, bound as inputs of the
next call where ONNX Runtime left them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gpt2kit.backends.loaded import LoadedModel
from gpt2kit.config import GPT2Config, read_generation_config, read_json
from gpt2kit.errors import GPT2KitError, ModelNotFoundError
from gpt2kit.extras import require
from gpt2kit.model.cache import KVCache

MODEL_FILE = "model.onnx"  # the graph in a folder of `gpt2kit export onnx`
LOGITS_TO_KEEP = "logits_to_keep"  # an optional input of the fused graph (export/fused.py)
PAST_BUFFER = ("gpt2kit.past", "buffer")  # metadata of a graph whose past may be a buffer shared with the present
NUMPY_DTYPES = {"fp32": np.float32, "fp16": np.float16}
TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def inference_session(path: Path):
    """An ONNX Runtime CPU session using as many threads as PyTorch is set to."""
    ort = require("onnxruntime", "onnx", "the onnxruntime backend")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    # ONNX Runtime's pool threads spin for a moment after a run (its default), so the next decode step
    # starts at once: int8 at batch 1, 64 -> 73 tok/s greedy. PyTorch's per-step work between runs then
    # runs on one thread (OrtDecoder.step_threads), or it waits for the spinning core (sampling 47 -> 25).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OrtCache:
    """Each layer's past keys and values (B, nh, length, hs) as ONNX Runtime values: the graph's
    last `present` outputs, which stay in ONNX Runtime's memory and are bound as the next call's
    `past_key_values` without a copy."""

    def __init__(self, config: GPT2Config, batch_size: int, max_length: int, dtype: type) -> None:
        self.config, self.batch_size, self.max_length, self.dtype = config, batch_size, max_length, dtype
        self.length = 0
        self.values: list[Any] = []  # OrtValues: key, value of layer 0, key, value of layer 1, ...
        self.reset()

    def reset(self) -> None:
        self.values = empty_past(self.config, self.batch_size, self.dtype)
        self.length = 0

    def reorder(self, index: torch.Tensor) -> None:
        ort = require("onnxruntime", "onnx", "the onnxruntime backend")
        rows = index.cpu().numpy()
        self.values = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v.numpy()[rows])) for v in self.values]
        self.batch_size = len(rows)

    def merge(self, other: OrtCache) -> None:
        """Append `other`'s rows, every row ending in the last column (see KVCache.merge)."""
        ort = require("onnxruntime", "onnx", "the onnxruntime backend")
        length = max(self.length, other.length)

        def padded(value, n: int):  # (B, nh, n, hs) -> (B, nh, length, hs), padding columns in front
            array = value.numpy()
            return np.pad(array, ((0, 0), (0, 0), (length - n, 0), (0, 0)))

        self.values = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(
            np.concatenate([padded(a, self.length), padded(b, other.length)])))
            for a, b in zip(self.values, other.values, strict=True)]
        self.batch_size += other.batch_size
        self.length, self.max_length = length, max(self.max_length, other.max_length, length)

    def trim(self, columns: int) -> None:
        """Forget the first `columns` columns of every row."""
        if columns:
            ort = require("onnxruntime", "onnx", "the onnxruntime backend")
            self.values = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v.numpy()[:, :, columns:]))
                           for v in self.values]
            self.length -= columns

    def grow(self, max_length: int) -> None:
        self.max_length = max(self.max_length, max_length)  # ONNX Runtime allocates each step's present


def empty_past(config: GPT2Config, batch_size: int, dtype: type) -> list[Any]:
    ort = require("onnxruntime", "onnx", "the onnxruntime backend")
    empty = np.zeros((batch_size, config.n_head, 0, config.head_dim), dtype=dtype)
    return [ort.OrtValue.ortvalue_from_numpy(empty)] * (2 * config.n_layer)


class OrtDecoder:
    """GPT-2's decoder graph in an ONNX Runtime session, as a `Decoder`.

    Each call binds its inputs and outputs (IO binding): the past as the values the previous call
    returned, or the KVCache buffer as both past and present, the logits into a torch tensor
    allocated here, so nothing is copied between numpy, ONNX Runtime and torch. A buffer's 4 *
    n_layer bindings are made once and kept while the buffer stays where it is: a decode step
    then binds its ids, mask, positions and logits only."""

    step_threads = 1  # PyTorch's threads for decoding's per-step work: see inference_session

    def __init__(self, session, config: GPT2Config, generation_config: dict[str, Any], dtype: str) -> None:
        self.session, self.config, self.generation_config, self.dtype = session, config, generation_config, dtype
        self.past_names = [f"past_key_values.{i}.{kv}" for i in range(config.n_layer) for kv in ("key", "value")]
        self.present_names = [f"present.{i}.{kv}" for i in range(config.n_layer) for kv in ("key", "value")]
        # the fused graph's optional input: logits for the last N positions only (a prefill needs one)
        self.keeps_logits = LOGITS_TO_KEEP in {i.name for i in session.get_inputs()}
        key, value = PAST_BUFFER
        self.past_buffer = session.get_modelmeta().custom_metadata_map.get(key) == value
        self._bound: tuple[tuple[int, tuple[int, ...]], Any] | None = None  # (buffer address, shape), binding

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def new_cache(self, batch_size: int, max_length: int | None = None) -> KVCache | OrtCache:
        if self.past_buffer:
            return KVCache(self.config, batch_size, max_length, dtype=TORCH_DTYPES[self.dtype])
        return OrtCache(self.config, batch_size, max_length or self.config.n_positions, NUMPY_DTYPES[self.dtype])

    def __call__(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                 position_ids: torch.Tensor | None = None, cache: KVCache | OrtCache | None = None,
                 last_only: bool = False) -> torch.Tensor:
        """See `Decoder.__call__`."""
        B, T = input_ids.shape
        past = cache.length if cache is not None else 0
        if past + T > self.config.n_positions:
            raise ValueError(f"sequence of {past + T} tokens exceeds the context of {self.config.n_positions}")
        if cache is not None and past + T > cache.max_length:
            raise ValueError(f"KV cache overflow: {past + T} tokens > capacity {cache.max_length}")
        if attention_mask is None:  # every token real: positions past .. past + T - 1, as in GPT2
            attention_mask = torch.ones(B, past + T, dtype=torch.long)
        elif attention_mask.shape != (B, past + T):
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {(B, past + T)}")
        attention_mask = attention_mask.long().cpu()
        if position_ids is None:
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, -T:]
        binding = self._buffer_binding(cache) if isinstance(cache, KVCache) else self._values_binding(cache, B)
        for name, tensor in (("input_ids", input_ids), ("attention_mask", attention_mask),
                             ("position_ids", position_ids.expand(B, T))):
            binding.bind_cpu_input(name, np.ascontiguousarray(tensor.long().cpu().numpy()))
        kept = 1 if last_only and self.keeps_logits else T
        if self.keeps_logits:  # bound every call: a kept binding may hold an earlier call's value
            binding.bind_cpu_input(LOGITS_TO_KEEP, np.array(kept if kept != T else 0, dtype=np.int64))
        logits = torch.empty(B, kept, self.config.vocab_size, dtype=TORCH_DTYPES[self.dtype])
        binding.bind_output("logits", "cpu", 0, NUMPY_DTYPES[self.dtype], list(logits.shape), logits.data_ptr())
        self.session.run_with_iobinding(binding)
        if isinstance(cache, KVCache):
            cache.advance(T)
        elif cache is not None:
            cache.values, cache.length = binding.get_outputs()[1:], past + T  # after the logits
        return logits[:, -1:] if last_only else logits

    def _buffer_binding(self, cache: KVCache):
        """A binding of `cache`'s buffer as every layer's past and present, made when the buffer is new."""
        key = (cache.kv.data_ptr(), tuple(cache.kv.shape))
        if self._bound is None or self._bound[0] != key:
            binding = self.session.io_binding()
            binding.bind_output("logits", "cpu")  # first, as _values_binding does
            element, shape = NUMPY_DTYPES[self.dtype], list(cache.kv.shape[2:])
            for layer in range(self.config.n_layer):
                for kind in (0, 1):
                    pointer = cache.kv[layer, kind].data_ptr()
                    binding.bind_input(self.past_names[2 * layer + kind], "cpu", 0, element, shape, pointer)
                    binding.bind_output(self.present_names[2 * layer + kind], "cpu", 0, element, shape, pointer)
            self._bound = (key, binding)
        return self._bound[1]

    def _values_binding(self, cache: OrtCache | None, batch_size: int):
        """A new binding of `cache`'s values (an empty past without one) as the past; the presents
        are left to ONNX Runtime and become the cache's values (get_outputs, after the logits)."""
        binding = self.session.io_binding()
        binding.bind_output("logits", "cpu")  # rebound to the caller's tensor; keeps the logits first
        pasts = cache.values if cache is not None else empty_past(self.config, batch_size, NUMPY_DTYPES[self.dtype])
        for name, value in zip(self.past_names, pasts, strict=True):
            binding.bind_ortvalue_input(name, value)
        for name in self.present_names:  # allocated by ONNX Runtime (from its arena), kept as they are
            binding.bind_output(name, "cpu")
        return binding


def check_graph(session, config: GPT2Config, path: Path) -> None:
    """Refuse a graph whose inputs or outputs are not the decoder graph's for `config`."""
    from gpt2kit.export.graphs import input_names, output_names

    got = ([i.name for i in session.get_inputs() if i.name != LOGITS_TO_KEEP], [o.name for o in session.get_outputs()])
    expected = (input_names("decoder", config.n_layer), output_names("decoder", config.n_layer))
    if got != expected:
        shown = ", ".join(got[0][:4]) + (", ..." if len(got[0]) > 4 else "")
        raise ModelNotFoundError(
            f"{path}: its inputs ({shown}) and outputs are not those of the decoder graph of this config.json "
            f"({config.n_layer} layers: input_ids, attention_mask, position_ids, past_key_values.N.key/value -> "
            "logits, present.N.key/value); write one with `gpt2kit export onnx`")


def onnx_cache_dir() -> Path:
    """Where PyTorch models exported on first use go: $XDG_CACHE_HOME/gpt2kit/onnx (~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gpt2kit" / "onnx"


def exported(model: str | Path | None, dtype: torch.dtype) -> Path:
    """The folder of an ONNX export of `model`: `model` itself when it is one; otherwise the export of
    it in the cache (keyed by the model's path, its files' sizes and times, and the dtype; in fp32
    the fused graph), written now if it is not there yet, which is said on stderr."""
    from gpt2kit.export import export_onnx
    from gpt2kit.weights.resolve import DEFAULT_NAME, resolve_model_path

    path = resolve_model_path(DEFAULT_NAME if model is None else model)
    folder = path if path.is_dir() else path.parent
    if (folder / MODEL_FILE).is_file():
        return folder
    names = {v: k for k, v in TORCH_DTYPES.items()}
    if dtype not in names:
        raise GPT2KitError(f"the onnxruntime backend runs fp32 or fp16 graphs, not {str(dtype).removeprefix('torch.')}")
    key = hashlib.sha256(f"v3|{path.resolve()}|{names[dtype]}".encode())  # v3: fused with a past buffer
    for f in ([path] if path.is_file() else sorted(p for p in folder.iterdir() if p.is_file())):
        stat = f.stat()
        key.update(f"|{f.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    target = onnx_cache_dir() / f"{folder.name}-{names[dtype]}-{key.hexdigest()[:16]}"
    if not (target / MODEL_FILE).is_file():
        print(f"gpt2kit: exporting {DEFAULT_NAME if model is None else model} to ONNX ({names[dtype]}) in {target} "
              "for the onnxruntime backend (first use: later runs load it from there)", file=sys.stderr, flush=True)
        # fp32: the fused graph, ONNX Runtime's fastest; fp16: the traced one (the fused one is fp32)
        export_onnx(path, target, dtype=names[dtype], overwrite=True, fused=names[dtype] == "fp32")
    return target


def load(model: str | Path | None, *, dtype: torch.dtype, device: torch.device, checkpoint_step: int | None = None,
         config_file: Path | None = None) -> LoadedModel:
    """A folder written by `gpt2kit export onnx --variant decoder` (its graph's dtype is the one it was
    exported in), or any model gpt2kit reads, exported in `dtype` on first use (`exported`)."""
    from gpt2kit.tokenizer import Tokenizer

    if device.type != "cpu":
        raise GPT2KitError(f"the onnxruntime backend runs on the CPU only, not {device}")
    if checkpoint_step is not None or config_file is not None:  # the export cache is keyed by files alone
        raise GPT2KitError("--checkpoint / --config pick what PyTorch reads; for the onnxruntime backend, `gpt2kit "
                           "convert` that model into a folder first and give the folder")
    folder = exported(model, dtype)
    raw = read_json(folder / "config.json")
    notes = raw.get("gpt2kit") if isinstance(raw, dict) else None
    notes = notes if isinstance(notes, dict) else {}
    graph = notes.get("onnx") if isinstance(notes.get("onnx"), dict) else {}
    if graph.get("variant", "decoder") != "decoder":
        raise ModelNotFoundError(f"{folder}: holds the {graph['variant']!r} graph, which gives no logits (export "
                                 "it with --variant decoder)")
    graph_dtype = graph.get("dtype", "fp32")
    if graph_dtype not in NUMPY_DTYPES:
        raise ModelNotFoundError(f"{folder}/config.json: unknown ONNX dtype {json.dumps(graph_dtype)}")
    config = GPT2Config.from_hf_dict(raw, source=str(folder / "config.json"))
    session = inference_session(folder / MODEL_FILE)
    check_graph(session, config, folder / MODEL_FILE)
    decoder = OrtDecoder(session, config, read_generation_config(folder), graph_dtype)
    return LoadedModel(model=decoder, tokenizer=Tokenizer.for_model(folder), name=None if model is None else str(model),
                       path=folder,
                       format="onnx", backend="onnxruntime", dtype=TORCH_DTYPES[graph_dtype],
                       metadata=notes)
