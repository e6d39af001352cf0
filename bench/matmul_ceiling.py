"""The fp32 ceiling of an exact prefill: matrix-multiply throughput at GPT-2 124M's prefill shapes.

A 1,023-token prefill of the 124M model is ~0.19 TFLOP of matrix products (170 MFLOP per token in the
blocks' weights, ~19 in attention over the causal prefix), so no exact fp32 engine prefills faster
than this machine multiplies matrices; this prints that bound next to the GFLOP/s.

    .venv/bin/python bench/matmul_ceiling.py
"""

from __future__ import annotations

import time

import torch

SHAPES = [(1023, 768, 2304), (1023, 768, 768), (1023, 768, 3072), (1023, 3072, 768)]  # qkv, proj, fc, mlp proj
FLOP_PER_TOKEN = 12 * (2 * 768 * 2304 + 2 * 768 * 768 + 2 * 2 * 768 * 3072) + 12 * 2 * 2 * 512 * 768


def best_seconds(fn, repeats: int = 7) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    torch.manual_seed(0)
    for threads in sorted({1, torch.get_num_threads()}):
        torch.set_num_threads(threads)
        rates = []
        for m, k, n in SHAPES:
            a, b = torch.randn(m, k), torch.randn(k, n)
            rates.append(2 * m * k * n / best_seconds(lambda a=a, b=b: a @ b) / 1e9)
        shown = ", ".join(f"{m}x{k}x{n} {r:.0f}" for (m, k, n), r in zip(SHAPES, rates, strict=True))
        print(f"{threads} thread(s): {shown} GFLOP/s; exact fp32 prefill of the 124M model at most "
              f"{max(rates) * 1e9 / FLOP_PER_TOKEN:.0f} tok/s")


if __name__ == "__main__":
    main()
