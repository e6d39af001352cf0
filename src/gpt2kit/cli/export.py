"""`gpt2kit export onnx`."""

from __future__ import annotations

import argparse
from pathlib import Path

from gpt2kit.cli.args import add_model_option, positive_int
from gpt2kit.export.graphs import VARIANTS
from gpt2kit.export.onnx_export import DEFAULT_OPSET, DTYPES, FUSED_MIN_OPSET, MAX_OPSET, MIN_OPSET, export_onnx
from gpt2kit.export.quantize import QUANTIZATIONS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model for another runtime (ONNX)",
                       description="Export a model for another runtime.")
    formats = p.add_subparsers(dest="format", metavar="FORMAT", required=True, parser_class=type(p),
                               help="the format to write: onnx")
    onnx = formats.add_parser(
        "onnx", help="an ONNX model folder, checked against PyTorch with ONNX Runtime (needs gpt2kit[onnx])",
        description="Write an ONNX model folder (model.onnx, config, tokenizer files, parity.json) after running "
                    "the graph with ONNX Runtime against PyTorch on random inputs.")
    add_model_option(onnx, required=False)
    onnx.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write")
    onnx.add_argument("--opset", type=int, default=DEFAULT_OPSET, metavar="N",
                      help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})")
    onnx.add_argument("--dtype", default="fp32", choices=tuple(DTYPES),
                      help="weights and activations: fp32 (default) or fp16")
    onnx.add_argument("--variant", default="decoder", choices=VARIANTS,
                      help="decoder (default): one graph for prefill and decode with past keys/values in and "
                           "out (transformers' / optimum's names); base: the ONNX model zoo's GPT-2 "
                           "(ids in, last hidden state and each layer's present out)")
    onnx.add_argument("--fused", action="store_true",
                      help="write the decoder graph with ONNX Runtime's fused operators (GroupQueryAttention, "
                           "SkipLayerNormalization, FastGelu; the past may be a preallocated buffer written in "
                           "place): faster on ONNX Runtime, runs nowhere else; fp32, "
                           f"opset {FUSED_MIN_OPSET}+")
    onnx.add_argument("--quantize", choices=QUANTIZATIONS, default=None,
                      help="int8: int8 matrix weights (ONNX Runtime dynamic quantization, per channel); prints the "
                           "perplexity of the fp32 and int8 graphs on --eval-text")
    onnx.add_argument("--eval-text", type=Path, default=None, metavar="FILE",
                      help="UTF-8 text for the perplexity check of --quantize (default: the held-out end of the "
                           "shipped model's King James Bible text)")
    onnx.add_argument("--eval-tokens", type=positive_int, default=None, metavar="N",
                      help="count only the first N tokens of --eval-text (default: all)")
    onnx.add_argument("--overwrite", action="store_true", help="write into a DIR that already holds files")
    onnx.set_defaults(run=run_onnx)


def run_onnx(args: argparse.Namespace) -> int:
    result = export_onnx(args.model, args.out, opset=args.opset, dtype=args.dtype, variant=args.variant,
                         overwrite=args.overwrite, quantize=args.quantize, eval_text=args.eval_text,
                         eval_tokens=args.eval_tokens, fused=args.fused)
    parity = result.parity
    agreement = f", top-1 agreement {parity['top1_agreement']:.0%}" if "top1_agreement" in parity else ""
    print(f"wrote {result.model_file} ({result.variant}{', fused' if result.fused else ''}, {result.dtype}, "
          f"opset {result.opset}"
          f"{', weights in ' + result.model_file.name + '.data' if result.external_data else ''})")
    print(f"ONNX Runtime vs PyTorch: max |{parity['compared']} diff| {parity['max_abs_diff']:.2g}{agreement} "
          f"over {len(parity['cases'])} cases (parity.json)")
    if result.quantize:
        q = parity["quantization"]
        ppl = q["perplexity"]
        print(f"{result.quantize} weights: perplexity on {ppl['text']} ({ppl['tokens']:,} tokens): fp32 "
              f"{ppl['fp32']:.3f} -> {result.quantize} {ppl[result.quantize]:.3f} ({ppl['change']:+.2%}); against "
              f"PyTorch: max |logits diff| {q['against_pytorch']['max_abs_diff']:.2g}, top-1 agreement "
              f"{q['against_pytorch']['top1_agreement']:.0%}")
    return 0
