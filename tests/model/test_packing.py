"""Packed CPU weights give the logits of the plain ones and follow weight changes."""

from __future__ import annotations

import pytest
import torch

from gpt2kit.model.packing import packing_available
from helpers import random_model

pytestmark = pytest.mark.skipif(not packing_available(), reason="oneDNN packing unavailable")


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-4), (torch.bfloat16, 0.05)])
def test_packed_logits_equal_plain(dtype, atol):
    model = random_model().to(dtype)
    ids = torch.randint(0, 50257, (3, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model(ids).float()
        assert model.pack_weights()
        packed = model(ids).float()
        one = model(ids[:1, :1]).float()
    assert (packed - plain).abs().max() <= atol
    assert (one[0, 0] - plain[0, 0]).abs().max() <= atol
    assert set(model.state_dict()) == set(random_model().state_dict())  # nothing new is saved


def test_packed_follows_weight_updates_and_autograd():
    model = random_model()
    model.pack_weights()
    ids = torch.randint(0, 50257, (1, 8))
    with torch.no_grad():
        before = model(ids)
        model.h[0].mlp.c_fc.weight.mul_(2.0)  # in place: the packed copy must notice
        model.wte.weight.add_(0.01)
        after = model(ids)
    model.unpack_weights()
    with torch.no_grad():
        plain = model(ids)
    assert (after - plain).abs().max() <= 1e-4 and (after - before).abs().max() > 1e-3
    model.pack_weights()
    model(ids).sum().backward()  # with grad enabled the plain weights are used
    assert model.h[0].attn.c_attn.weight.grad is not None


def test_dtype_change_after_packing_repacks():
    model = random_model()
    model.pack_weights()
    ids = torch.randint(0, 50257, (1, 8))
    model.to(torch.bfloat16)
    with torch.no_grad():
        packed = model(ids).float()
    model.unpack_weights()
    with torch.no_grad():
        plain = model(ids).float()
    assert (packed - plain).abs().max() <= 0.05
