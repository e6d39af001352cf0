"""An exported graph run by ONNX Runtime against GPT2 itself on random inputs.

The reference is GPT2's ordinary forward with its own `KVCache` (prefill the past, then the
new tokens with the attention mask, positions counted from it), not the traced wrapper, so a
difference in the wrapper shows up here as well as one in the exporter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gpt2kit.backends.onnxruntime_backend import inference_session
from gpt2kit.export.graphs import input_names
from gpt2kit.model.gpt2 import GPT2

# (batch, past, new tokens, left padding of each row): prefill and decode, batch 1 and 3,
# padding inside the past and reaching into the new tokens
DECODER_CASES = ((1, 0, 7, (0,)), (3, 0, 6, (0, 2, 4)), (3, 5, 1, (0, 3, 5)), (1, 4, 3, (0,)), (3, 3, 4, (0, 1, 5)))
BASE_CASES = ((1, 7), (3, 5))
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}  # fp16: relative to the largest |logit| (or hidden state), at least 1


def left_padded_mask(batch: int, length: int, padding: tuple[int, ...]) -> torch.Tensor:
    """(batch, length) int64: 0 for each row's first `padding[row]` positions, 1 after."""
    mask = torch.ones(batch, length, dtype=torch.long)
    for row, n in enumerate(padding):
        mask[row, :n] = 0
    return mask


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


@torch.no_grad()
def decoder_case(session, model: GPT2, batch: int, past: int, new: int, padding: tuple[int, ...],
                 gen: torch.Generator) -> dict[str, Any]:
    config = model.config
    ids = torch.randint(0, config.vocab_size, (batch, past + new), generator=gen)
    mask = left_padded_mask(batch, past + new, padding)
    cache = model.new_cache(batch, past + new)
    if past:
        model(ids[:, :past], attention_mask=mask[:, :past], cache=cache)
    pasts = [cache.kv[layer, kv, :, :, :past].clone() for layer in range(config.n_layer) for kv in (0, 1)]
    expected = model(ids[:, past:], attention_mask=mask, cache=cache)  # (B, T, vocab)
    presents = [cache.kv[layer, kv, :, :, :past + new] for layer in range(config.n_layer) for kv in (0, 1)]
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)[:, -new:]  # as GPT2.hidden_states counts them
    feed = dict(zip(input_names("decoder", config.n_layer),
                    [_numpy(t) for t in (ids[:, past:], mask, position_ids, *pasts)], strict=True))
    logits, *got = session.run(None, feed)
    real = mask[:, -new:].bool().numpy()
    top1 = (logits.argmax(-1) == _numpy(expected.float().argmax(-1)))[real]
    return {
        "batch": batch, "past": past, "new": new, "left_padding": list(padding),
        "max_abs_diff": _max_diff(logits, expected),
        "max_abs_present_diff": max(_max_diff(g, p) for g, p in zip(got, presents, strict=True)),
        "max_abs_logit": float(expected.float().abs().max()),
        "top1_agreement": float(top1.mean()),
    }


@torch.no_grad()
def base_case(session, model: GPT2, batch: int, length: int, gen: torch.Generator) -> dict[str, Any]:
    config = model.config
    ids = torch.randint(0, config.vocab_size, (batch, length), generator=gen)
    cache = model.new_cache(batch, length)
    expected = model.hidden_states(ids, cache=cache)  # (B, T, n_embd)
    presents = [cache.kv[layer, :, :, :, :length] for layer in range(config.n_layer)]  # (2, B, nh, T, hs)
    hidden, *got = session.run(None, {"input_ids": _numpy(ids)})
    return {
        "batch": batch, "past": 0, "new": length, "left_padding": [0] * batch,
        "max_abs_diff": _max_diff(hidden, expected),
        "max_abs_present_diff": max(_max_diff(g, p) for g, p in zip(got, presents, strict=True)),
        "max_abs_logit": float(expected.float().abs().max()),  # of the hidden state, for this variant
    }


def _max_diff(got: np.ndarray, expected: torch.Tensor) -> float:
    return float(np.abs(got.astype(np.float32) - _numpy(expected.float())).max())


def check_parity(path: Path, model: GPT2, variant: str, dtype: str, seed: int = 0) -> dict[str, Any]:
    """Run the graph at `path` and `model` on the same random inputs; the report that parity.json holds.
    `passed`: every case's largest |difference| within the dtype's tolerance."""
    session = inference_session(path)
    gen = torch.Generator().manual_seed(seed)
    context = model.config.n_positions
    if variant == "base":
        cases = [base_case(session, model, b, min(t, context), gen) for b, t in BASE_CASES]
    else:  # the cases that fit the context, or the whole context at once
        fitting = [case for case in DECODER_CASES if case[1] + case[2] <= context] or [(1, 0, context, (0,))]
        cases = [decoder_case(session, model, *case, gen) for case in fitting]
    tolerance = TOLERANCE[dtype]
    if dtype != "fp32":
        tolerance *= max(1.0, max(c["max_abs_logit"] for c in cases))
    worst = max(c["max_abs_diff"] for c in cases)
    worst_present = max(c["max_abs_present_diff"] for c in cases)
    report: dict[str, Any] = {
        "variant": variant, "dtype": dtype, "runtime": "onnxruntime " + _ort_version(),
        "compared_with": "gpt2kit GPT2 (PyTorch " + torch.__version__ + ")",
        "compared": "logits" if variant == "decoder" else "last_hidden_state",
        "max_abs_diff": worst, "max_abs_present_diff": worst_present, "tolerance": tolerance,
        "passed": max(worst, worst_present) <= tolerance,
    }
    if variant == "decoder":
        report["top1_agreement"] = min(c["top1_agreement"] for c in cases)
    report["cases"] = cases
    return report


def _ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__
