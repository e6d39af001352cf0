"""int8 weights for an exported decoder graph, and what they cost in perplexity.

ONNX Runtime's dynamic quantization: every MatMul and Gemm whose weight is a constant (the
four projections of each block and the LM head) gets int8 weights, one scale per output
channel, and quantizes its activations per call (DynamicQuantizeLinear + MatMulInteger).
The embeddings stay fp32. The graph's inputs and outputs are unchanged (fp32 logits), so the
onnxruntime backend runs it as it runs the fp32 graph. A token then reads a quarter of the
matrix bytes, which is what decoding one token at a time waits for on a CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gpt2kit.extras import require

QUANTIZATIONS = ("int8",)
METHOD = ("onnxruntime quantize_dynamic: int8 weights per output channel of every MatMul/Gemm with constant "
          "weights (blocks and LM head), activations quantized per call (MatMulInteger); embeddings fp32")


def quantize_int8(source: Path, target: Path) -> None:
    """Write `source`'s graph with int8 matrix weights to `target`."""
    quantization = require("onnxruntime.quantization", "onnx", "int8 quantization")
    from onnx import TensorProto

    logging.disable(logging.WARNING)  # its advice to run a pre-processing step, logged on the root logger
    try:
        quantization.quantize_dynamic(str(source), str(target), weight_type=quantization.QuantType.QInt8,
                                      per_channel=True, op_types_to_quantize=["MatMul", "Gemm"],
                                      # the fused graph's operators have no type inference in the quantizer
                                      extra_options={"DefaultTensorType": TensorProto.FLOAT})
    finally:
        logging.disable(logging.NOTSET)


def perplexity_change(before: Path, after: Path, config, text: str, text_name: str, tokenizer,
                      max_tokens: int | None) -> dict[str, Any]:
    """Perplexity of the graphs `before` and `after` (decoder graphs of `config`) on `text`."""
    from gpt2kit.backends.onnxruntime_backend import OrtDecoder, inference_session
    from gpt2kit.evaluation.perplexity import perplexity

    ids = tokenizer.encode(text)  # once, for both graphs
    values = {}
    for name, path in (("fp32", before), ("int8", after)):
        decoder = OrtDecoder(inference_session(path), config, {}, "fp32")
        result = perplexity(decoder, ids, max_tokens=max_tokens)
        values[name] = result.value
    return {"text": text_name, "tokens": result.tokens, "fp32": values["fp32"], "int8": values["int8"],
            "change": values["int8"] / values["fp32"] - 1}
