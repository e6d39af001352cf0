"""Argument types and options shared by subcommands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from gpt2kit.backends import LoadedModel, backend_names, load

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
    default = "" if required else " (default: the small King James Bible model gpt2kit ships)"
    parser.add_argument(
        "--model", required=required, default=None, metavar="PATH",
        help="model folder or file in any format gpt2kit reads (gpt2kit / Hugging Face, OpenAI TensorFlow and "
             "gpt-2-simple runs, MindSpore .ckpt, GGUF, llm.c .bin, nanoGPT ckpt.pt, gpt-tf2 Keras .h5), "
             "`default` for the model gpt2kit ships, or a published name: gpt2, gpt2-medium, "
             f"gpt2-large, gpt2-xl (also 124M, 355M, 774M, 1558M), looked up in the Hugging Face cache{default}",
    )


def add_read_options(parser: argparse.ArgumentParser) -> None:
    """How to read a --model whose files leave a choice open."""
    parser.add_argument("--checkpoint", type=non_negative_int, default=None, metavar="STEP",
                        help="read the save of this step of a TensorFlow run folder (gpt-2-simple's model-STEP; "
                             "default: the latest, as its checkpoint file names)")
    parser.add_argument("--config", dest="config_file", type=Path, default=None, metavar="HPARAMS",
                        help="the hparams.json of a gpt-tf2 Keras .h5 (default: the one beside the .h5)")


def read_options(args: argparse.Namespace) -> dict:
    """--checkpoint and --config as the keyword arguments of load / convert / describe_model."""
    return {"checkpoint_step": getattr(args, "checkpoint", None), "config_file": getattr(args, "config_file", None)}


def add_device_options(parser: argparse.ArgumentParser, backends: bool = True) -> None:
    """--device and --dtype, and --backend unless `backends` is False (classifiers run on PyTorch only)."""
    parser.add_argument("--device", default="auto", metavar="DEV",
                        help="cpu, cuda, cuda:N, or auto (cuda when available, else cpu); default auto")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES),
                        help="compute dtype: fp32 (default), bf16, or fp16 (fp16 is for CUDA)")
    if not backends:
        return
    parser.add_argument("--backend", default="torch", choices=backend_names(),
                        help="what runs the model: torch (default), or onnxruntime (CPU): a folder written by "
                             "`gpt2kit export onnx` in the dtype it was exported in, or any other model exported "
                             "on first use into ~/.cache/gpt2kit/onnx")


def load_model(args: argparse.Namespace, task: str = "generate") -> LoadedModel:
    """--model on --device in --dtype, ready to generate (or, with task "classify", a classifier); which
    model it is goes to stderr."""
    device = "cpu" if getattr(args, "backend", "torch") == "onnxruntime" and args.device == "auto" else args.device
    loaded = load(args.model, backend=getattr(args, "backend", "torch"), dtype=DTYPES[args.dtype], device=device,
                  **read_options(args))
    loaded.require_task(task)
    for line in loaded.notes(fp32="--dtype fp32"):
        print(line, file=sys.stderr)
    return loaded
