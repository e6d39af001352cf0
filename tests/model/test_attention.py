import math

import pytest
import torch
import torch.nn.functional as F

from gpt2kit.model import attention
from gpt2kit.model.attention import causal_attention, keep_masks, keep_scale
from helpers import random_model, tiny_config


def qkv(B=2, H=3, T=300, D=16, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, T, D, generator=gen).to(dtype).requires_grad_() for _ in range(3)]


def reference(q, k, v, keep, p, scale=None):
    """Plain autograd attention with a given full (B*H, T, T) keep mask."""
    B, H, T, D = q.shape
    s = (q.float() @ k.float().transpose(-1, -2)) * (scale or 1 / math.sqrt(D))
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
    return (s * keep.view(B, H, T, T) * keep_scale(p)) @ v.float()


def full_mask(B, H, T, p, seed):
    """The masks causal_attention draws after manual_seed(seed), as one (B*H, T, T) tensor."""
    torch.manual_seed(seed)
    keep = torch.zeros(B * H, T, T, dtype=torch.bool)
    for i, m in enumerate(keep_masks(B * H, T, p, torch.device("cpu"), attention.BLOCK)):
        start = i * attention.BLOCK
        keep[:, start:start + m.shape[1], :m.shape[2]] = m
    return keep


def grads(out, inputs, seed=1):
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    return torch.autograd.grad(out, inputs, g.to(out.dtype))


def test_without_dropout_equals_pytorch_causal_attention():
    q, k, v = qkv()
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    out = attention._DropoutCausalAttention.apply(*(t.reshape(6, 300, 16) for t in (q, k, v)), 0.0, 0.25)
    out = out.view(ref.shape)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads(out, (q, k, v)), grads(ref, (q, k, v)), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_equals_plain_attention_with_the_same_masks(p):
    q, k, v = qkv()
    torch.manual_seed(7)
    out = causal_attention(q, k, v, p)
    ref = reference(q, k, v, full_mask(2, 3, 300, p, seed=7), p)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads(out, (q, k, v)), grads(ref, (q, k, v)), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 0.25 / 3])  # scale_attn_weights false; inverse layer index
def test_dropout_with_another_score_scale(scale):
    q, k, v = qkv(T=150)
    torch.manual_seed(5)
    out = causal_attention(q, k, v, 0.1, scale)
    ref = reference(q, k, v, full_mask(2, 3, 150, 0.1, seed=5), 0.1, scale)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads(out, (q, k, v)), grads(ref, (q, k, v)), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_bf16_stays_close_to_fp32_with_the_same_masks():
    q, k, v = qkv(dtype=torch.bfloat16)
    torch.manual_seed(3)
    out = causal_attention(q, k, v, 0.1)
    ref = reference(q, k, v, full_mask(2, 3, 300, 0.1, seed=3), 0.1)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.02)  # bf16 keeps 8 bits of mantissa
    for a, b in zip(grads(out, (q, k, v)), grads(ref, (q, k, v)), strict=True):
        assert ((a.float() - b).norm() / b.norm()).item() < 0.02


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_masks_keep_the_stated_fraction(p):
    torch.manual_seed(0)
    masks = keep_masks(4, 512, p, torch.device("cpu"), 128)
    kept = sum(m.sum().item() for m in masks) / sum(m.numel() for m in masks)
    n = sum(m.numel() for m in masks)
    assert abs(kept - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    assert keep_scale(p) * (1 - round(p * 65536) / 65536) == pytest.approx(1.0)


def test_outside_training_or_without_dropout_pytorch_attention_is_used(monkeypatch):
    monkeypatch.setattr(attention._DropoutCausalAttention, "apply", None)  # would fail if reached
    q, k, v = qkv(T=20)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(causal_attention(q, k, v, 0.0), ref)
    model = random_model(tiny_config(attn_pdrop=0.1))  # eval mode: no dropout
    model(torch.randint(0, 50257, (1, 8)))


def test_checkpointed_training_recomputes_the_same_masks():
    """Activation checkpointing recomputes each block in backward: the dropout masks it
    draws again must be the ones of the forward pass, or the gradients are wrong."""
    cfg = tiny_config(attn_pdrop=0.2, resid_pdrop=0.1, embd_pdrop=0.1)
    ids = torch.randint(0, cfg.vocab_size, (2, 40), generator=torch.Generator().manual_seed(0))
    results = []
    for ckpt in (False, True):
        model = random_model(cfg).train()
        model.gradient_checkpointing = ckpt
        torch.manual_seed(11)
        loss = F.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], atol=0, rtol=0)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
