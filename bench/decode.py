"""Decode speed: gpt2kit vs transformers' generate() on the same random weights, in one run.

GPT-2 124M shape, greedy, a 32-token prompt, 128 new tokens (no early stop), batch 1 and 8,
fp32 and bf16. Prints tokens/s for each and the ratio gpt2kit / transformers.

    .venv/bin/python bench/decode.py [--batch 1 8] [--dtype fp32 bf16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import transformers

from gpt2kit import GPT2, GPT2Config, generate

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def hf_decode(hf, prompt: torch.Tensor, batch: int, new_tokens: int) -> None:
    with torch.inference_mode():
        out = hf.generate(prompt.expand(batch, -1), attention_mask=torch.ones(batch, prompt.shape[1], dtype=torch.long),
                          max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                          pad_token_id=hf.config.eos_token_id)
    assert out.shape[1] == prompt.shape[1] + new_tokens


def ours_decode(model: GPT2, prompt: torch.Tensor, batch: int, new_tokens: int) -> None:
    out = generate(model, prompt[0], max_new_tokens=new_tokens, temperature=0, num_samples=batch, eos_token_id=None)
    assert len(out[0]) == new_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="gpt2", help="size preset (default gpt2, the 124M shape)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--dtype", nargs="+", default=["fp32", "bf16"], choices=sorted(DTYPES))
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell; the median is reported")
    args = parser.parse_args()

    config = GPT2Config.from_name(args.config)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        hf_config = transformers.GPT2Config(**{k: v for k, v in config.to_hf_dict().items() if k != "architectures"})
        transformers.GPT2LMHeadModel(hf_config).save_pretrained(Path(tmp))
        rows = []
        for dtype_name in args.dtype:
            dtype = DTYPES[dtype_name]
            hf = transformers.GPT2LMHeadModel.from_pretrained(tmp, dtype=dtype).eval()
            ours = GPT2.from_pretrained(tmp, dtype=dtype)
            ours.pack_weights()  # what `gpt2kit generate` does on CPU
            for batch in args.batch:
                gen = torch.Generator().manual_seed(1)
                prompt = torch.randint(0, config.vocab_size, (1, args.prompt_len), generator=gen)

                run_hf = partial(hf_decode, hf, prompt, batch, args.new_tokens)
                run_ours = partial(ours_decode, ours, prompt, batch, args.new_tokens)
                n_tokens = batch * args.new_tokens
                t_hf, t_ours = timed(run_hf, args.repeats), timed(run_ours, args.repeats)
                rows.append((dtype_name, batch, n_tokens / t_hf, n_tokens / t_ours))
                print(f"  {dtype_name} batch {batch}: transformers {n_tokens / t_hf:.1f} tok/s, "
                      f"gpt2kit {n_tokens / t_ours:.1f} tok/s", flush=True)

    print(f"\nDecode, {args.config} shape, prompt {args.prompt_len}, {args.new_tokens} new tokens, greedy; "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, transformers {transformers.__version__}\n")
    print("| dtype | batch | transformers tok/s | gpt2kit tok/s | ratio |")
    print("|---|---|---|---|---|")
    for dtype_name, batch, hf_tps, our_tps in rows:
        print(f"| {dtype_name} | {batch} | {hf_tps:.1f} | {our_tps:.1f} | {our_tps / hf_tps:.2f}x |")


if __name__ == "__main__":
    main()
