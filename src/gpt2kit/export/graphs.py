"""What gets traced into ONNX: GPT2's own modules, run with past keys/values as inputs.

GPT2 decodes through a preallocated `KVCache` written in place, which a trace cannot
express. Here the past comes in as graph inputs and each layer's keys/values go out, the
past concatenated with the new ones (`ConcatCache`); the blocks, the attention, the mask
and the LM head are GPT2's own code, so the graph computes what GPT2 computes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gpt2kit.model.gpt2 import GPT2

VARIANTS = ("decoder", "base")


def input_names(variant: str, n_layer: int) -> list[str]:
    """The graph's inputs, in order: transformers' / optimum's names."""
    if variant == "base":
        return ["input_ids"]
    past = [f"past_key_values.{i}.{kv}" for i in range(n_layer) for kv in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids", *past]


def output_names(variant: str, n_layer: int) -> list[str]:
    if variant == "base":  # the ONNX model zoo's GPT-2: one stacked (key, value) tensor per layer
        return ["last_hidden_state", *[f"present.{i}" for i in range(n_layer)]]
    return ["logits", *[f"present.{i}.{kv}" for i in range(n_layer) for kv in ("key", "value")]]


def dynamic_axes(variant: str, n_layer: int) -> dict[str, dict[int, str]]:
    """Batch and sequence axes of every input and output (the rest: heads, head_dim, vocab, width)."""
    if variant == "base":
        axes = {"input_ids": {0: "batch", 1: "sequence"}, "last_hidden_state": {0: "batch", 1: "sequence"}}
        return axes | {f"present.{i}": {1: "batch", 3: "sequence"} for i in range(n_layer)}
    axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "total_sequence"},
        "position_ids": {0: "batch", 1: "sequence"},
        "logits": {0: "batch", 1: "sequence"},
    }
    for name in input_names(variant, n_layer)[3:]:
        axes[name] = {0: "batch", 2: "past_sequence"}
    for name in output_names(variant, n_layer)[1:]:
        axes[name] = {0: "batch", 2: "total_sequence"}
    return axes


class ConcatCache:
    """What GPT2's attention asks of a cache (`update`), with the past given as tensors:
    each layer's keys/values are the past's followed by the new ones, kept as `present`."""

    def __init__(self, past: list[tuple[torch.Tensor, torch.Tensor]] | None, n_layer: int) -> None:
        self.past = past
        self.present: list[tuple[torch.Tensor, torch.Tensor]] = [None] * n_layer  # type: ignore[list-item]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.past is not None:
            past_k, past_v = self.past[layer]  # (B, nh, past, hs)
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)  # (B, nh, past + T, hs)
        self.present[layer] = (k, v)
        return k, v


def run_blocks(model: GPT2, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
               cache: ConcatCache, past_length: int | torch.Tensor) -> torch.Tensor:
    """GPT2.hidden_states with the mask and positions given, through `cache`: (B, T, n_embd)."""
    B, T = input_ids.shape
    mask, is_causal = GPT2._attention_mask(attention_mask, B, T, past_length, input_ids.device)
    if model.dtype != torch.float32 and not model.config.reorder_and_upcast_attn:
        # The exporter turns SDPA's boolean mask into fp32 scores whatever q's dtype, which leaves an
        # fp16 graph with fp32 nodes in it; the equivalent additive mask keeps it in the model's dtype.
        mask = torch.zeros(mask.shape, dtype=model.dtype, device=mask.device).masked_fill(~mask, float("-inf"))
    x = model.wte(input_ids) + model.wpe(position_ids)  # (B, T, C); dropout is off in eval
    for i, block in enumerate(model.h):
        x = block(x, mask, is_causal, cache, i)
    return model.ln_f(x)


class DecoderGraph(nn.Module):
    """Prefill and decode in one graph: (input_ids, attention_mask, position_ids, past k/v per layer)
    -> (logits, present k/v per layer). An empty past (length 0) is a prefill."""

    def __init__(self, model: GPT2) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model
        pairs = [(past[2 * i], past[2 * i + 1]) for i in range(model.config.n_layer)]
        cache = ConcatCache(pairs, model.config.n_layer)
        h = run_blocks(model, input_ids, attention_mask, position_ids, cache, pairs[0][0].shape[2])
        B, T, C = h.shape
        # (B*T, C): a 2-D product, so that the head can become Gemm(transB) over wte (onnx_export.tie_head)
        logits = F.linear(h.reshape(B * T, C), model.head_weight).reshape(B, T, model.config.vocab_size)
        return (logits, *[t for kv in cache.present for t in kv])


class BaseGraph(nn.Module):
    """The ONNX model zoo's GPT-2: input_ids -> (last hidden state, per layer (key, value) stacked
    as (2, B, nh, T, hs)). No padding and no past: positions 0..T-1, causal attention."""

    def __init__(self, model: GPT2) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model
        B, T = input_ids.shape
        cache = ConcatCache(None, model.config.n_layer)
        position_ids = torch.arange(T, device=input_ids.device).unsqueeze(0).expand(B, T)
        h = run_blocks(model, input_ids, torch.ones_like(input_ids), position_ids, cache, 0)
        c = model.config
        # reshaped with the model's sizes as numbers: the graph's outputs then say their heads and head_dim
        return (h, *[torch.stack(kv).reshape(2, B, c.n_head, T, c.head_dim) for kv in cache.present])


def graph_module(model: GPT2, variant: str) -> nn.Module:
    return {"decoder": DecoderGraph, "base": BaseGraph}[variant](model).eval()


def example_inputs(model: GPT2, variant: str) -> tuple[torch.Tensor, ...]:
    """Inputs to trace with: batch 2, 3 new tokens after 2 past ones, so that no axis is 0 or 1
    (the tracer would take such a size for a constant); fewer in a context shorter than 5."""
    config = model.config
    B, T, P = (2, 3, 2) if config.n_positions >= 5 else (2, config.n_positions - config.n_positions // 2,
                                                          config.n_positions // 2)
    input_ids = torch.randint(0, config.vocab_size, (B, T), generator=torch.Generator().manual_seed(0))
    if variant == "base":
        return (input_ids,)
    attention_mask = torch.ones(B, P + T, dtype=torch.long)
    position_ids = torch.arange(P, P + T).expand(B, T).contiguous()
    shape = (B, config.n_head, P, config.head_dim)
    past = [torch.zeros(shape, dtype=model.dtype) for _ in range(2 * config.n_layer)]
    return (input_ids, attention_mask, position_ids, *past)
