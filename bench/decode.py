"""Decode speed of every engine a GPT-2 user could pick, against transformers' generate(), in one run.

Engines (each skipped with a note where it does not install): transformers fp32 (the reference),
gpt2kit's PyTorch backend fp32 (as `gpt2kit generate` runs it: `gpt2kit.load`, packed weights),
gpt2kit's ONNX Runtime backend on the exported fp32 graph and on its `--quantize int8` copy (both
`--fused`, as `--backend onnxruntime` exports a model on first use),
CTranslate2 float32 and int8 (its converter reads the Hugging Face folder gpt2kit writes),
llama.cpp (llama-cpp-python) on the GGUF files `gpt2kit convert --to gguf` writes, f32 (with an f32
KV cache) and q8_0, at batch 1 only (llama-cpp-python decodes one sequence), and bf16 for
transformers and gpt2kit where the CPU has native bf16 (elsewhere it is tens of times slower).

GPT-2 124M shape (random weights), greedy, no stop on end-of-text. Cells: a 32-token prompt and
128 new tokens at batch 1 and 8 (tokens/s of new tokens, the prompt's prefill included), and
prefill: a 1,023-token prompt and 1 new token, the context of 1,024 (prompt tokens/s).

Before anything is timed, every engine decodes each cell once (also its warm-up) and its ids are
compared with transformers'. fp32 engines must give the same ids, or ids that part only on
near-ties: every id within TIE_TOLERANCE of the largest logit of transformers' plain forward pass
(random weights give nearly flat logits, which rounding can flip); otherwise nothing is timed
(exit 2). int8 and bf16 engines compute something else: the table says how many ids agree, and
their perplexity on held-out text of a trained model (the shipped model, on the end of the King
James Bible it never trained on; random weights say nothing about quantization) beside the fp32
perplexity. Then the engines take turns run by run (transformers, engine 2, engine 3, ...,
transformers, ...) for --repeats rounds; the ratio is each round's engine tok/s over the same
round's transformers fp32 tok/s, summarised by its median and range.

    .venv/bin/python bench/decode.py [--cells b1 b8 prefill] [--engines ...] [--repeats 5] [--json FILE]

On a quiet 2-core AVX2 machine the default run takes about 15 minutes.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import util
from pathlib import Path

import benchkit
import torch
import transformers

import gpt2kit
from gpt2kit import GPT2, GPT2Config, Tokenizer, generate
from gpt2kit.evaluation import heldout_text, perplexity
from gpt2kit.evaluation.scoring import windows
from gpt2kit.export import export_onnx
from gpt2kit.tokenizer.bpe import bytes_to_unicode

TIE_TOLERANCE = 1e-3  # fp32: implementations' logits differ by about 1e-5; random-weight top-2 gaps reach 0.008
# batch, prompt, new tokens; prefill: the whole context of 1,024 (the new token needs no room after it in
# transformers, but gpt2kit keeps room for it, so the prompt is 1,023)
CELLS = {"b1": (1, 32, 128), "b8": (8, 32, 128), "prefill": (1, 1023, 1)}


@dataclass
class Engine:
    name: str
    precision: str
    exact: bool  # computes what transformers fp32 does (ids must match up to near-ties)
    decode: Callable[[torch.Tensor, int, int], list[list[int]]]  # (prompt (1, T), batch, new) -> ids per row
    perplexity: Callable[[], float] | None = None  # on the shipped model's held-out text, for inexact engines
    notes: list[str] = field(default_factory=list)
    batched: bool = True  # decodes several rows at once (else it runs the batch-1 cells only)


def hf_engine(folder: Path, dtype: torch.dtype, precision: str) -> tuple[Engine, object]:
    hf = transformers.GPT2LMHeadModel.from_pretrained(folder, dtype=dtype).eval()
    hf.generation_config.eos_token_id = None  # no stop on end-of-text

    def decode(prompt: torch.Tensor, batch: int, new: int) -> list[list[int]]:
        rows = prompt.expand(batch, -1)
        with torch.inference_mode():
            out = hf.generate(rows, attention_mask=torch.ones_like(rows), max_new_tokens=new, min_new_tokens=new,
                              do_sample=False, pad_token_id=0)
        return out[:, prompt.shape[1]:].tolist()

    return Engine("transformers", precision, precision == "fp32", decode), hf


def gpt2kit_engine(model, name: str, precision: str, exact: bool) -> Engine:
    def decode(prompt: torch.Tensor, batch: int, new: int) -> list[list[int]]:
        return generate(model, prompt[0].tolist(), max_new_tokens=new, temperature=0, num_samples=batch,
                        eos_token_id=None)

    return Engine(name, precision, exact, decode)


def token_strings(ids: list[int]) -> list[str]:
    """Token ids as the vocabulary strings CTranslate2 takes (GPT-2's byte-to-unicode spelling, "Ġthe")."""
    tok, spelling = Tokenizer.from_pretrained(), bytes_to_unicode()
    return ["".join(spelling[b] for b in tok.token_bytes(i)) for i in ids]


def ct2_engine(folder: Path, work: Path, compute_type: str, precision: str, threads: int) -> Engine:
    import ctranslate2

    target = work / f"ct2-{compute_type}"
    if not target.exists():
        ctranslate2.converters.TransformersConverter(str(folder)).convert(str(target), quantization=compute_type)
    generator = ctranslate2.Generator(str(target), device="cpu", compute_type=compute_type, intra_threads=threads)

    def decode(prompt: torch.Tensor, batch: int, new: int) -> list[list[int]]:
        tokens = token_strings(prompt[0].tolist())
        results = generator.generate_batch([tokens] * batch, max_length=new, min_length=new, sampling_topk=1,
                                           include_prompt_in_result=False, end_token=[])
        return [r.sequences_ids[0] for r in results]

    return Engine("CTranslate2", precision, compute_type == "float32", decode)


def ct2_perplexity(folder: Path, work: Path, compute_type: str, threads: int, context: int) -> float:
    """CTranslate2's perplexity of the model in `folder` on the held-out text, in the windows gpt2kit
    scores with (a context each, half a context apart; each token counted once)."""
    import ctranslate2

    target = work / f"ct2-shipped-{compute_type}"
    if not target.exists():
        ctranslate2.converters.TransformersConverter(str(folder)).convert(str(target), quantization=compute_type)
    generator = ctranslate2.Generator(str(target), device="cpu", compute_type=compute_type, intra_threads=threads)
    ids = Tokenizer.from_pretrained().encode(heldout_text())
    spans = windows(len(ids), context)
    results = generator.score_batch([token_strings(ids[b:e]) for b, e, _ in spans], max_batch_size=8)
    total, count = 0.0, 0
    for (begin, _, first), result in zip(spans, results, strict=True):
        kept = result.log_probs[first - begin - 1:]  # log_probs[k] scores token k + 1 of the window
        total, count = total - math.fsum(kept), count + len(kept)
    if count != len(ids) - 1:
        raise RuntimeError(f"CTranslate2 scored {count} tokens, not {len(ids) - 1}")
    return math.exp(total / count)


def llama_cpp_engine(folder: Path, work: Path, dtype: str, threads: int) -> Engine:
    """llama.cpp on gpt2kit's GGUF of the model: f32 (f32 KV cache, so it computes what fp32 does) or q8_0."""
    import llama_cpp

    from gpt2kit.weights.convert import convert

    target = work / f"gguf-{dtype}"
    if not target.exists():
        convert(folder, target, dst_format="gguf", **({"quantize": "q8_0"} if dtype == "q8_0" else {}))
    kv = {"type_k": 0, "type_v": 0} if dtype == "f32" else {}  # GGML_TYPE_F32: llama.cpp's default cache is f16
    llm = llama_cpp.Llama(str(target / "model.gguf"), n_ctx=1024, n_batch=1024, n_threads=threads,
                          n_threads_batch=threads, verbose=False, **kv)

    def decode(prompt: torch.Tensor, batch: int, new: int) -> list[list[int]]:
        ids: list[int] = []
        llm.reset()  # else generate() keeps the prompt's cached keys/values from the last run: no prefill at all
        for token in llm.generate(prompt[0].tolist(), top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
            ids.append(token)
            if len(ids) == new:
                break
        return [ids]

    return Engine("llama.cpp", "fp32" if dtype == "f32" else "int8 (q8_0)", dtype == "f32", decode, batched=False)


def gguf_q8_0_perplexity(shipped: Path, work: Path) -> float:
    """The shipped model's perplexity with its matrices as Q8_0 stores them (read back dequantized by
    gpt2kit: llama.cpp's own kernels also round the activations to 8 bits, which this leaves out)."""
    from gpt2kit.weights.convert import convert

    target = convert(shipped, work / "shipped-q8_0", dst_format="gguf", quantize="q8_0")
    loaded = gpt2kit.load(target / "model.gguf")
    return perplexity(loaded.model, heldout_text(), tokenizer=loaded.tokenizer).value


def check_ids(engine: Engine, reference: list[list[int]], got: list[list[int]], judge, prompt: torch.Tensor,
              cell: str) -> dict:
    """Compare an engine's ids with transformers'; fp32 engines may part only on near-ties."""
    same = sum(a == b for r, g in zip(reference, got, strict=True) for a, b in zip(r, g, strict=True))
    total = sum(len(r) for r in reference)
    if any(len(r) != len(reference[0]) for r in got):
        benchkit.refuse(f"{engine.name} {engine.precision} {cell}: generated {[len(r) for r in got]} tokens")
    check = {"same_ids": same == total, "agreeing_ids": same, "ids": total}
    if same == total or not engine.exact:
        return check
    worst = 0.0
    for row in {tuple(r) for r in got}:
        seq = torch.cat([prompt[0], torch.tensor(row)])
        with torch.inference_mode():
            logits = judge(input_ids=seq[None]).logits[0, prompt.shape[1] - 1:-1].float()
        gaps = logits.max(dim=1).values - logits.gather(1, torch.tensor(row)[:, None])[:, 0]
        worst = max(worst, float(gaps.max()))
    if worst > TIE_TOLERANCE:
        benchkit.refuse(f"{engine.name} {engine.precision} {cell}: ids differ from transformers' by more than "
                        f"near-ties (an id {worst:.2g} below the largest logit; tolerance {TIE_TOLERANCE:g})")
    check["near_ties_only"] = worst
    return check


def build_engines(args, work: Path, folder: Path, machine: dict) -> tuple[list[Engine], object, list[str], float]:
    """The engines to time (transformers fp32 first), transformers' model (the judge of near-ties),
    the notes on engines left out, and the shipped model's fp32 perplexity on its held-out text."""
    threads = torch.get_num_threads()
    skipped = []
    reference, judge = hf_engine(folder, torch.float32, "fp32")
    engines = [reference]
    want = set(args.engines)
    shipped = Path(gpt2kit.__file__).parent / "default_model"
    torch_fp32 = gpt2kit.load(folder)  # packed weights, as `gpt2kit generate` runs
    shipped_fp32 = gpt2kit.load("default")
    fp32_ppl = perplexity(shipped_fp32.model, heldout_text(), tokenizer=shipped_fp32.tokenizer).value
    if "gpt2kit" in want:
        engines.append(gpt2kit_engine(torch_fp32.model, "gpt2kit (PyTorch)", "fp32", True))
    if machine["native_bf16"] and "bf16" in want:
        engines.append(hf_engine(folder, torch.bfloat16, "bf16")[0])
        engines.append(gpt2kit_engine(gpt2kit.load(folder, dtype=torch.bfloat16).model, "gpt2kit (PyTorch)", "bf16",
                                      False))
    elif "bf16" in want:
        skipped.append("bf16: this CPU has no native bf16 matrix instructions (tens of times slower than fp32)")
    if want & {"onnxruntime", "onnxruntime-int8"}:
        if util.find_spec("onnxruntime") is None:
            skipped.append("gpt2kit (ONNX Runtime): pip install 'gpt2kit[onnx]'")
        else:
            if "onnxruntime" in want:
                export_onnx(folder, work / "onnx", fused=True)
                engines.append(gpt2kit_engine(gpt2kit.load(work / "onnx", backend="onnxruntime").model,
                                              "gpt2kit (ONNX Runtime)", "fp32", True))
            if "onnxruntime-int8" in want:
                export_onnx(folder, work / "onnx-int8", fused=True, quantize="int8", eval_tokens=64)
                int8 = gpt2kit_engine(gpt2kit.load(work / "onnx-int8", backend="onnxruntime").model,
                                      "gpt2kit (ONNX Runtime)", "int8", False)

                def int8_ppl() -> float:
                    report = export_onnx(shipped, work / "shipped-int8", fused=True, quantize="int8")
                    return report.parity["quantization"]["perplexity"]["int8"]

                int8.perplexity = int8_ppl
                engines.append(int8)
    if want & {"ctranslate2", "ctranslate2-int8"}:
        if util.find_spec("ctranslate2") is None:
            skipped.append("CTranslate2: pip install ctranslate2")
        else:
            if "ctranslate2" in want:
                engines.append(ct2_engine(folder, work, "float32", "fp32", threads))
            if "ctranslate2-int8" in want:
                ct2 = ct2_engine(folder, work, "int8_float32", "int8", threads)
                ct2.perplexity = lambda: ct2_perplexity(shipped, work, "int8_float32", threads,
                                                        shipped_fp32.model.config.n_positions)
                engines.append(ct2)
    if want & {"llama.cpp", "llama.cpp-int8"}:
        if util.find_spec("llama_cpp") is None:
            skipped.append("llama.cpp: pip install llama-cpp-python (built from source)")
        else:
            if "llama.cpp" in want:
                engines.append(llama_cpp_engine(folder, work, "f32", threads))
            if "llama.cpp-int8" in want:
                q8 = llama_cpp_engine(folder, work, "q8_0", threads)
                q8.perplexity = lambda: gguf_q8_0_perplexity(shipped, work)
                engines.append(q8)
    return engines, judge, skipped, fp32_ppl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    all_engines = ["gpt2kit", "bf16", "onnxruntime", "onnxruntime-int8", "ctranslate2", "ctranslate2-int8",
                   "llama.cpp", "llama.cpp-int8"]
    parser.add_argument("--config", default="gpt2", help="size preset (default gpt2, the 124M shape)")
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS),
                        help="b1, b8: 32-token prompt + 128 new at batch 1 / 8; prefill: 1,023-token prompt + 1")
    parser.add_argument("--engines", nargs="+", default=all_engines, choices=all_engines,
                        help="engines besides transformers fp32 (default: all that install)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per cell (>= 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and prompts")
    parser.add_argument("--json", type=Path, default=benchkit.RESULTS / "decode.json",
                        help="where the raw timings go (default bench/results/decode.json)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    machine, _ = benchkit.checked_machine(["fp32"], "--engines")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    started = time.perf_counter()
    config = GPT2Config.from_name(args.config)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = work / "hf"  # one folder every engine loads (or converts) its weights from
        GPT2.from_config(config, seed=args.seed).eval().save_pretrained(folder)
        Tokenizer.from_pretrained().save_pretrained(folder, model_max_length=config.n_positions)
        engines, judge, skipped, fp32_ppl = build_engines(args, work, folder, machine)
        for note in skipped:
            print(f"  skipped: {note}", flush=True)
        gen = torch.Generator().manual_seed(args.seed + 1)
        prompts = {cell: torch.randint(0, config.vocab_size, (1, CELLS[cell][1]), generator=gen) for cell in args.cells}

        results = []
        for cell in args.cells:
            batch, _, new = CELLS[cell]
            prompt = prompts[cell]
            running = [e for e in engines if e.batched or batch == 1]
            reference = running[0].decode(prompt, batch, new)
            checks = [{"same_ids": True}] + [check_ids(e, reference, e.decode(prompt, batch, new), judge, prompt, cell)
                                             for e in running[1:]]
            seconds = benchkit.interleave(
                {f"{e.name} {e.precision}": benchkit.stopwatch(lambda e=e, p=prompt, b=batch, n=new: e.decode(p, b, n))
                 for e in running}, repeats=args.repeats)
            amount = batch * new if cell != "prefill" else prompt.shape[1]
            tps = {name: benchkit.rates(s, amount) for name, s in seconds.items()}
            base = tps[f"{running[0].name} {running[0].precision}"]
            for engine, check in zip(running, checks, strict=True):
                key = f"{engine.name} {engine.precision}"
                results.append({"cell": cell, "engine": engine.name, "precision": engine.precision, "check": check,
                                "seconds": seconds[key], "tokens_per_s": benchkit.summary(tps[key]),
                                "ratio": benchkit.summary(benchkit.paired_ratios(tps[key], base))})
                print(f"  {cell} {key}: {benchkit.spread(results[-1]['tokens_per_s'])} tok/s", flush=True)

        ppl = {f"{e.name} {e.precision}": e.perplexity() for e in engines if e.perplexity is not None}

    def ids_cell(check: dict) -> str:
        if check["same_ids"]:
            return "yes"
        if "near_ties_only" in check:
            return "near-ties"
        return f"no ({check['agreeing_ids']}/{check['ids']} agree)"

    rows = []
    for r in results:
        key = f"{r['engine']} {r['precision']}"
        rows.append((r["cell"], r["engine"], r["precision"], benchkit.spread(r["tokens_per_s"]),
                     f"{r['ratio']['median']:.2f}x ({r['ratio']['min']:.2f}-{r['ratio']['max']:.2f})",
                     ids_cell(r["check"]), f"{ppl[key]:.2f} (fp32 {fp32_ppl:.2f})" if key in ppl else ""))
    print(f"\nDecode, {args.config} shape (random weights), greedy; b1/b8: 32-token prompt + 128 new tokens at batch "
          f"1/8 (new tok/s), prefill: 1,023-token prompt + 1 (prompt tok/s); median (min-max) of {args.repeats} "
          f"interleaved rounds; ratio: per-round tok/s over transformers fp32's; perplexity: the shipped model on "
          f"its held-out text; {benchkit.describe(machine)}\n")
    print(benchkit.markdown_table(
        ["cell", "engine", "precision", "tok/s", "vs transformers fp32", "greedy ids equal", "perplexity"], rows))
    for note in skipped:
        print(f"- not run: {note}")
    path = benchkit.write_json(args.json, {
        "bench": "decode", "command": [Path(sys.executable).name, *sys.argv], "machine": machine,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "order": "per cell: a check run of each engine, then rounds of every engine in turn",
        "ratio": "per round: engine tok/s / transformers fp32 tok/s", "skipped": skipped,
        "perplexity": {"fp32": fp32_ppl, **ppl}, "cells": results,
        "wall_seconds": round(time.perf_counter() - started, 1)})
    print(f"\nraw timings: {path}")


if __name__ == "__main__":
    main()
