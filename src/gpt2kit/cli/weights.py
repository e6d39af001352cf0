"""`gpt2kit convert` and `gpt2kit download`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpt2kit.cli.args import DTYPES, add_read_options, read_options
from gpt2kit.weights.convert import convert
from gpt2kit.weights.download import download
from gpt2kit.weights.folder import FORMATS, WRITABLE
from gpt2kit.weights.gguf_file import QUANTIZED


def add_convert_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="convert a checkpoint between formats (Hugging Face, OpenAI TensorFlow, MindSpore, GGUF, "
                        "llm.c, nanoGPT, gpt-tf2 Keras .h5; read only: a sharded training checkpoint, dcp)",
        description="Read a checkpoint in any supported format and write a complete model folder "
                    "(weights, config, tokenizer files).")
    p.add_argument("src", metavar="SRC", help="source folder or file (or a published name found in the HF cache)")
    p.add_argument("dst", type=Path, metavar="DST", help="folder to write")
    p.add_argument("--from", dest="src_format", default="auto", choices=("auto", *FORMATS),
                   help="source format; auto (default) detects it from the files (dcp: a checkpoint of "
                        "`finetune --sharded-checkpoints`, its shards put together)")
    p.add_argument("--to", dest="dst_format", default="hf", choices=WRITABLE,
                   help="hf: gpt2kit / Hugging Face folder (default); openai: OpenAI's TensorFlow layout; "
                        "mindspore: MindSpore GPT-2's gpt2.ckpt + hparams.json; gguf: llama.cpp's model.gguf; "
                        "llmc: llm.c's model.bin + gpt2_tokenizer.bin (fp32 or bf16); nanogpt: nanoGPT's ckpt.pt; "
                        "keras-h5: gpt-tf2's Keras model.h5 + hparams.json")
    p.add_argument("--dtype", default=None, choices=[*sorted(DTYPES), *QUANTIZED],
                   help="store weights in this dtype (default: keep the source's); q8_0: GGUF only, the matrices "
                        "in ggml's 8-bit blocks (llama.cpp's int8)")
    p.add_argument("--overwrite", action="store_true", help="write into a DST that already holds files")
    add_read_options(p)
    p.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    quantize = args.dtype if args.dtype in QUANTIZED else None
    dtype = DTYPES[args.dtype] if args.dtype in DTYPES else None
    out = convert(args.src, args.dst, src_format=args.src_format, dst_format=args.dst_format, dtype=dtype,
                  quantize=quantize, overwrite=args.overwrite, **read_options(args))
    print(f"wrote {out} ({args.dst_format})")
    return 0


def add_download_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download", help="download a published GPT-2 (OpenAI's original files or the Hugging Face repo)",
        description="Download a published GPT-2: gpt2, gpt2-medium, gpt2-large, gpt2-xl (or 124M, 355M, 774M, "
                    "1558M). Interrupted downloads resume when the command is run again.")
    p.add_argument("name", metavar="NAME", help="model name, e.g. gpt2 or 124M")
    p.add_argument("--source", default="openai", choices=("openai", "hf"),
                   help="openai: the original TensorFlow release (default); hf: the Hugging Face repo")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="folder to create (default: models/NAME-SOURCE)")
    p.add_argument("--mirror", default=None, metavar="URL",
                   help="base URL serving OpenAI's layout (SIZE/FILE) instead of OpenAI's storage")
    p.set_defaults(run=run_download)


def run_download(args: argparse.Namespace) -> int:
    out = download(args.name, source=args.source, out=args.out, base_url=args.mirror,
                   progress=sys.stderr.isatty())
    print(f"downloaded {args.name} to {out}")
    return 0
