"""The fused LM-head loss against PyTorch's own linear + cross-entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gpt2kit.training import loss as fused


@pytest.mark.parametrize("chunk", [7, 2048])  # several chunks, and one
def test_loss_and_gradients_match_pytorch(monkeypatch, chunk):
    monkeypatch.setattr(fused, "CHUNK", chunk)
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(3, 20, 16, generator=gen, requires_grad=True)
    w = torch.randn(500, 16, generator=gen, requires_grad=True)
    y = torch.randint(0, 500, (3, 20), generator=gen)
    ref = F.cross_entropy((h @ w.t()).reshape(-1, 500), y.reshape(-1))
    ref_h, ref_w = torch.autograd.grad(ref * 3.0, (h, w))
    ours = fused.linear_cross_entropy(h, w, y)
    got_h, got_w = torch.autograd.grad(ours * 3.0, (h, w))  # a scale after the loss reaches the gradients
    assert abs(ours.item() - ref.item()) < 1e-5
    assert torch.allclose(got_h, ref_h, atol=1e-6) and torch.allclose(got_w, ref_w, atol=1e-6)


def test_frozen_head_and_bf16_autocast():
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(64, 32, generator=gen, requires_grad=True)
    w = torch.randn(300, 32, generator=gen)  # frozen: no gradient wanted
    y = torch.randint(0, 300, (64,), generator=gen)
    ref = F.cross_entropy(h @ w.t(), y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = fused.linear_cross_entropy(h, w, y)
    low.backward()
    assert abs(low.item() - ref.item()) < 0.05 * ref.item()
    assert h.grad is not None and w.grad is None
    with torch.no_grad():
        assert abs(fused.linear_cross_entropy(h, w, y).item() - ref.item()) < 1e-5
