"""The fused LM-head loss against PyTorch's own linear + cross-entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gpt2kit.training import loss as fused


def ignoring(y: torch.Tensor) -> torch.Tensor:
    """Labels with -100 where a prompt, padding (whole chunks of nothing counted) and one column are."""
    y = y.clone()
    y[0, :7] = -100  # a prompt
    y[1, 15:] = -100  # padding: some chunks hold no counted target at all
    y[:, 10] = -100
    return y


@pytest.mark.parametrize("chunk", [5, 2048])  # several chunks, and one
@pytest.mark.parametrize("masked", [False, True])
def test_loss_and_gradients_match_pytorch(monkeypatch, chunk, masked):
    monkeypatch.setattr(fused, "CHUNK", chunk)
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(2, 24, 16, generator=gen, requires_grad=True)
    w = torch.randn(300, 16, generator=gen, requires_grad=True)
    y = torch.randint(0, 300, (2, 24), generator=gen)
    y = ignoring(y) if masked else y
    ref = F.cross_entropy((h @ w.t()).reshape(-1, 300), y.reshape(-1), ignore_index=-100)
    ref_h, ref_w = torch.autograd.grad(ref * 3.0, (h, w))
    ours = fused.linear_cross_entropy(h, w, y)
    got_h, got_w = torch.autograd.grad(ours * 3.0, (h, w))  # a scale after the loss reaches the gradients
    assert abs(ours.item() - ref.item()) < 1e-5
    assert torch.allclose(got_h, ref_h, atol=1e-6) and torch.allclose(got_w, ref_w, atol=1e-6)
    total, count = fused.linear_cross_entropy_sum(h, w, y)
    assert count.item() == int((y != -100).sum())
    assert abs(total.item() - ref.item() * count.item()) < 1e-3
    if masked:
        assert not got_h[0, :7].any() and not got_h[1, 15:].any()  # ignored positions get no gradient


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


def test_a_batch_with_no_counted_token_gives_zero_not_nan():
    h = torch.randn(3, 8, requires_grad=True)
    w = torch.randn(50, 8, requires_grad=True)
    y = torch.full((3,), -100)
    loss = fused.linear_cross_entropy(h, w, y)
    loss.backward()
    assert loss.item() == 0.0 and fused.linear_cross_entropy_sum(h, w, y)[1].item() == 0
    assert torch.equal(h.grad, torch.zeros_like(h)) and torch.equal(w.grad, torch.zeros_like(w))
