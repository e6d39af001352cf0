"""Peak memory of loading and converting a large OpenAI-layout checkpoint.

Writes random weights of a preset (default gpt2-xl, the 1558M shape) in OpenAI's TensorFlow
layout, then, each in a fresh process, loads it with gpt2kit and converts it to a gpt2kit
(Hugging Face) folder, reporting each process's peak RSS against the weights' size.

    .venv/bin/python bench/convert_memory.py [--config gpt2-xl] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRITE = """
import sys, torch
from gpt2kit import GPT2
from gpt2kit.weights import save_model
torch.manual_seed(0)
save_model(GPT2.from_config(sys.argv[1]), sys.argv[2], fmt="openai")
"""
LOAD = """
import sys
from gpt2kit import GPT2
GPT2.from_pretrained(sys.argv[1])
"""


def run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of one child process (os.wait4 reports that child alone)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{args[:3]} failed with exit code {proc.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss / 1e6  # ru_maxrss is in KB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="gpt2-xl")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (needs 2x the model size)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        src, dst = Path(tmp) / "openai", Path(tmp) / "hf"
        py = sys.executable
        print(f"writing random {args.config} weights in OpenAI's layout ...", flush=True)
        run([py, "-c", WRITE, args.config, str(src)])
        size_gb = (src / "model.ckpt.data-00000-of-00001").stat().st_size / 1e9
        t_load, rss_load = run([py, "-c", LOAD, str(src)])
        t_conv, rss_conv = run([py, "-m", "gpt2kit", "convert", str(src), str(dst)])
        print(f"\n{args.config}: weights {size_gb:.2f} GB (fp32)\n")
        print("| step | peak RSS | x weights | seconds |")
        print("|---|---|---|---|")
        print(f"| load OpenAI checkpoint (GPT2.from_pretrained) | {rss_load:.2f} GB | {rss_load / size_gb:.2f}x "
              f"| {t_load:.0f} |")
        print(f"| gpt2kit convert openai -> hf | {rss_conv:.2f} GB | {rss_conv / size_gb:.2f}x | {t_conv:.0f} |")


if __name__ == "__main__":
    main()
