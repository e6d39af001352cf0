"""`gpt2kit export onnx`: a model folder holding an ONNX graph of GPT-2, checked against PyTorch.

The folder holds model.onnx (with model.onnx.data beside it past protobuf's 2 GB), config.json,
generation_config.json, the tokenizer files and parity.json: how closely ONNX Runtime's outputs
matched GPT2's on random inputs. Nothing appears under the folder's name unless the graph passed
onnx's checker and that comparison.

PyTorch's TorchScript exporter is used: the torch.export one needs onnxscript, and the traced
graph's batch and sequence axes come out dynamic (checked by running other shapes than the
traced ones).
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gpt2kit.backends.onnxruntime_backend import MODEL_FILE
from gpt2kit.errors import GPT2KitError
from gpt2kit.export.fused import write_fused_graph
from gpt2kit.export.graphs import VARIANTS, dynamic_axes, example_inputs, graph_module, input_names, output_names
from gpt2kit.export.quantize import METHOD, QUANTIZATIONS, perplexity_change, quantize_int8
from gpt2kit.extras import require
from gpt2kit.model.gpt2 import GPT2

MIN_OPSET = 14  # the exporter writes scaled_dot_product_attention from opset 14 on
MAX_OPSET = 20  # the newest opset PyTorch's TorchScript exporter supports
DEFAULT_OPSET = 17  # the first with LayerNormalization as one node
FUSED_MIN_OPSET = 17  # the fused graph writes LayerNormalization
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
DATA_FILE = "model.onnx.data"  # the weights, when the graph would pass protobuf's 2 GB limit
EXTERNAL_DATA_BYTES = 2**31 - 2**26  # weights above this go to DATA_FILE (room left for the graph itself)


class ExportError(GPT2KitError):
    """Export options that cannot work, or an output folder that cannot be used."""


@dataclass(frozen=True)
class ExportResult:
    path: Path  # the folder written
    model_file: Path  # its model.onnx
    variant: str  # decoder | base
    dtype: str  # fp32 | fp16
    opset: int
    inputs: tuple[str, ...]  # the graph's input names, in order
    outputs: tuple[str, ...]
    external_data: bool  # weights in DATA_FILE beside the graph
    parity: dict[str, Any] = field(default_factory=dict)  # what parity.json holds
    quantize: str | None = None  # int8: the matrix weights (parity["quantization"] has the perplexities)
    fused: bool = False  # written with ONNX Runtime's fused operators (export/fused.py)


def check_options(opset: int, dtype: str, variant: str, quantize: str | None = None, fused: bool = False) -> None:
    if fused and (variant != "decoder" or dtype != "fp32" or opset < FUSED_MIN_OPSET):
        raise ExportError(f"--fused writes the fp32 decoder graph at opset {FUSED_MIN_OPSET} or newer (its LayerNorm), "
                          f"not --variant {variant} --dtype {dtype} --opset {opset}")
    if quantize is not None:
        if quantize not in QUANTIZATIONS:
            raise ExportError(f"unknown quantization {quantize!r}; known: {', '.join(QUANTIZATIONS)}")
        if dtype != "fp32":
            raise ExportError(f"--quantize {quantize} quantizes an fp32 graph's weights: leave out --dtype {dtype}")
        if variant != "decoder":
            raise ExportError(f"--quantize {quantize} needs --variant decoder (its perplexity check needs logits)")
    if variant not in VARIANTS:
        raise ExportError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    if dtype not in DTYPES:
        raise ExportError(f"unknown dtype {dtype!r} for ONNX export; known: {', '.join(DTYPES)}")
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise ExportError(f"opset must be an integer, got {opset!r}")
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old for GPT-2's graph: its attention (scaled_dot_product_attention) "
                          f"needs opset {MIN_OPSET} or newer (default {DEFAULT_OPSET})")
    if opset > MAX_OPSET:
        raise ExportError(f"opset {opset} is newer than PyTorch's ONNX exporter writes (up to {MAX_OPSET}; "
                          f"default {DEFAULT_OPSET})")


def check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out}: already exists and is not empty (pass --overwrite to replace its export files)")


def export_onnx(model: str | Path | GPT2 | None, out: str | Path, *, opset: int = DEFAULT_OPSET,
                dtype: str = "fp32", variant: str = "decoder", overwrite: bool = False, quantize: str | None = None,
                eval_text: str | Path | None = None, eval_tokens: int | None = None,
                fused: bool = False) -> ExportResult:
    """Export `model` (a name or path as `gpt2kit.load` takes, None for the shipped model, or a GPT2)
    to an ONNX model folder `out`.

    variant "decoder": one graph for prefill and decode, transformers' / optimum's names
    (input_ids, attention_mask, position_ids, past_key_values.N.key/value -> logits,
    present.N.key/value); "base": the ONNX model zoo's GPT-2 (input_ids -> last_hidden_state,
    present.N). The graph is run by ONNX Runtime against PyTorch before the folder is written.

    quantize "int8": the checked fp32 graph's matrix weights become int8 (export/quantize.py), and
    the perplexity of both graphs on `eval_text` (a file; default the held-out end of the shipped
    model's training text), its first `eval_tokens` tokens when given, goes into parity.json.

    fused: the decoder graph written with ONNX Runtime's fused operators (export/fused.py): same
    inputs and outputs (plus an optional `logits_to_keep`), faster on ONNX Runtime, runs nowhere else.
    """
    check_options(opset, dtype, variant, quantize, fused)
    text, text_name = _eval_text(eval_text) if quantize else (None, None)
    out = Path(out)
    check_out(out, overwrite)
    onnx = require("onnx", "onnx", "ONNX export")
    require("onnxruntime", "onnx", "ONNX export (its check against PyTorch)")
    from gpt2kit.export.parity import check_parity
    from gpt2kit.weights.folder import atomic_folder

    gpt2, tokenizer, metadata = _source(model, DTYPES[dtype])
    names_in, names_out = input_names(variant, gpt2.config.n_layer), output_names(variant, gpt2.config.n_layer)
    report: dict[str, Any] = {}
    external = False

    def write(tmp: Path) -> None:
        nonlocal report, external
        if fused:
            external = write_fused_graph(gpt2, tmp / MODEL_FILE, opset, EXTERNAL_DATA_BYTES, DATA_FILE)
        else:
            external = _write_graph(gpt2, variant, opset, tmp / MODEL_FILE)
        if external and quantize:
            raise ExportError(f"--quantize {quantize}: this graph's weights pass 2 GB (external data), which "
                              "the quantizer here does not take; export without --quantize")
        onnx.checker.check_model(str(tmp / MODEL_FILE))  # by path: works past 2 GB too
        graph = {"file": MODEL_FILE, "variant": variant, "dtype": dtype, "opset": opset} | (
            {"fused": True} if fused else {})
        gpt2.config.save(tmp / "config.json", extra={"gpt2kit": metadata | {
            "onnx": graph | ({"quantize": quantize} if quantize else {})}})
        generation = gpt2.generation_config or {"bos_token_id": gpt2.config.bos_token_id,
                                                "eos_token_id": gpt2.config.eos_token_id}
        (tmp / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
        tokenizer.save_pretrained(tmp, model_max_length=gpt2.config.n_positions)
        report = check_parity(tmp / MODEL_FILE, gpt2, variant, dtype)
        if not report["passed"]:
            raise ExportError(f"ONNX Runtime's outputs differ from PyTorch's by up to "
                              f"{max(report['max_abs_diff'], report['max_abs_present_diff']):.3g} "
                              f"(tolerance {report['tolerance']:.3g}); nothing was written")
        if quantize:  # the fp32 graph passed; its int8 copy replaces it, measured against it
            fp32_file, int8_file = tmp / MODEL_FILE, tmp / ("int8-" + MODEL_FILE)
            quantize_int8(fp32_file, int8_file)
            onnx.checker.check_model(str(int8_file))
            int8 = check_parity(int8_file, gpt2, variant, dtype)
            report["quantization"] = {
                "method": METHOD,
                "against_pytorch": {k: int8[k] for k in ("max_abs_diff", "max_abs_present_diff", "top1_agreement")},
                "perplexity": perplexity_change(fp32_file, int8_file, gpt2.config, text, text_name, tokenizer,
                                                eval_tokens)}
            int8_file.replace(fp32_file)
        (tmp / "parity.json").write_text(json.dumps(report, indent=2) + "\n")

    atomic_folder(out, write)
    if not external:  # a larger model exported here before left its weights file
        (out / DATA_FILE).unlink(missing_ok=True)
    return ExportResult(out, out / MODEL_FILE, variant, dtype, opset, tuple(names_in), tuple(names_out), external,
                        report, quantize, fused)


def _eval_text(path: str | Path | None) -> tuple[str, str]:
    """The text int8 is measured on, and how to name it."""
    from gpt2kit.evaluation.perplexity import HELDOUT_NAME, heldout_text

    if path is None:
        return heldout_text(), HELDOUT_NAME
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except IsADirectoryError:
        raise ExportError(f"--eval-text {path}: is a folder; give a UTF-8 text file") from None
    except FileNotFoundError:
        raise ExportError(f"--eval-text {path}: no such file") from None
    except UnicodeDecodeError:
        raise ExportError(f"--eval-text {path}: not UTF-8 text") from None
    except OSError as e:
        raise ExportError(f"--eval-text {path}: cannot be read ({e.strerror})") from None


def _source(model: str | Path | GPT2 | None, dtype: torch.dtype):
    """A GPT2 of our own in `dtype` (a caller's model is copied, never changed), its tokenizer, and
    the notes config.json gets."""
    from gpt2kit.tokenizer import Tokenizer
    from gpt2kit.weights.folder import model_from_state, read_metadata, read_model
    from gpt2kit.weights.resolve import DEFAULT_NAME

    if isinstance(model, GPT2):
        from gpt2kit.training.lora import has_lora, merged_state

        # plain weights only (LoRA adapters folded in): no packed copies or adapters get traced
        state = merged_state(model) if has_lora(model) else model.state_dict()
        state = {k: v.detach().to("cpu", dtype) for k, v in state.items()}
        gpt2 = model_from_state(model.config, state)
        gpt2.generation_config = dict(model.generation_config)
        return gpt2, Tokenizer.from_pretrained(), {}
    gpt2, info = read_model(DEFAULT_NAME if model is None else model, dtype=dtype, device="cpu")
    if not isinstance(gpt2, GPT2):
        raise GPT2KitError(f"{info.path}: a classifier; ONNX export writes language models (decoder graphs) only")
    metadata = {**read_metadata(info.path, info.format), "exported_from": f"{info.format}: {info.path}"}
    return gpt2.eval(), Tokenizer.for_model(info.path), metadata


def _write_graph(model: GPT2, variant: str, opset: int, path: Path) -> bool:
    """Trace `model`'s graph into `path`; True when its weights went to DATA_FILE beside it."""
    import onnx

    n_layer = model.config.n_layer
    trace = path.parent / ".trace"  # the exporter's own output: one file per tensor past 2 GB
    trace.mkdir()
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter's deprecation notice, and tracer warnings about the shape checks
        # in GPT2 (Python-side validation that the graph does not need)
        warnings.simplefilter("ignore")
        torch.onnx.export(graph_module(model, variant), example_inputs(model, variant), str(trace / MODEL_FILE),
                          input_names=input_names(variant, n_layer), output_names=output_names(variant, n_layer),
                          dynamic_axes=dynamic_axes(variant, n_layer), opset_version=opset, dynamo=False,
                          do_constant_folding=True)
    proto = onnx.load(str(trace / MODEL_FILE))  # external tensors are read back in
    if variant == "decoder" and model.config.tie_word_embeddings:
        tie_head(proto, "model.wte.weight")
    weight_bytes = sum(t.ByteSize() for t in proto.graph.initializer)
    external = weight_bytes > EXTERNAL_DATA_BYTES
    onnx.save_model(proto, str(path), save_as_external_data=external, all_tensors_to_one_file=True,
                    location=DATA_FILE, size_threshold=1024)
    del proto
    shutil.rmtree(trace)
    return external


def tie_head(proto, embedding: str) -> None:
    """Point the LM head at the embedding itself. The exporter folds the head's transpose of wte
    into a second initializer (vocab x n_embd stored twice); the head's MatMul over that copy
    becomes Gemm(transB=1) over wte, and the copy goes."""
    from onnx import helper, numpy_helper

    initializers = {t.name: t for t in proto.graph.initializer}
    wte = numpy_helper.to_array(initializers[embedding])
    for index, node in enumerate(proto.graph.node):
        copy = initializers.get(node.input[1]) if node.op_type == "MatMul" else None
        if copy is None or tuple(copy.dims) != wte.shape[::-1]:
            continue
        if not (numpy_helper.to_array(copy) == wte.T).all():
            continue
        gemm = helper.make_node("Gemm", [node.input[0], embedding], list(node.output), name=node.name + "_tied",
                                transB=1)
        proto.graph.node.remove(node)
        proto.graph.node.insert(index, gemm)
        proto.graph.initializer.remove(copy)
        return
    raise AssertionError("the tied LM head's MatMul was not found in the exported graph")
