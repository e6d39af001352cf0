"""AdamW with bf16 moments against torch's AdamW."""

from __future__ import annotations

import torch

from gpt2kit.training.adamw import AdamWLowMemory


def run(make_opt, steps: int = 20) -> torch.Tensor:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(16, 8))
    target = torch.randn(16, 8)
    opt = make_opt([w])
    for _ in range(steps):
        loss = ((w - target) ** 2).sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
    return w.detach()


def test_fp32_state_matches_torch_adamw():
    ours = run(lambda p: AdamWLowMemory(p, lr=0.05, weight_decay=0.1, state_dtype=torch.float32))
    ref = run(lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1))
    assert torch.allclose(ours, ref, atol=1e-5)


def test_bf16_state_stays_close_and_saves_memory():
    ours = run(lambda p: AdamWLowMemory(p, lr=0.05, weight_decay=0.1))
    ref = run(lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1))
    assert (ours - ref).abs().max() < 0.02
    w = torch.nn.Parameter(torch.randn(4, 4))
    opt = AdamWLowMemory([w])
    w.sum().backward()
    opt.step()
    assert opt.state[w]["exp_avg"].dtype == torch.bfloat16
    again = AdamWLowMemory([w])
    again.load_state_dict(opt.state_dict())  # resumable like any optimizer
    assert torch.equal(again.state[w]["exp_avg_sq"], opt.state[w]["exp_avg_sq"])
