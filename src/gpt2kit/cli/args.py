"""Argument types and options shared by subcommands."""

from __future__ import annotations

import argparse

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_model_option(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--model", required=required, metavar="PATH",
        help="model folder (gpt2kit / Hugging Face layout) or published name: gpt2, gpt2-medium, gpt2-large, "
             "gpt2-xl (also 124M, 355M, 774M, 1558M), looked up in the Hugging Face cache",
    )


def add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", metavar="DEV",
                        help="cpu, cuda, cuda:N, or auto (cuda when available, else cpu); default auto")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES),
                        help="compute dtype: fp32 (default), bf16, or fp16 (fp16 is for CUDA)")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
