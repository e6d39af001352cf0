"""Packed CPU weights give the logits of the plain ones and follow weight changes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gpt2kit import GPT2, generate
from gpt2kit.model.packing import PackedLinear, WatchedParameter, packable, packing_available
from gpt2kit.training.lora import add_lora, merge_lora
from helpers import random_model, tiny_config

pytestmark = pytest.mark.skipif(not packing_available(), reason="oneDNN packing unavailable")


NO_BF16 = pytest.mark.skipif(not packable(torch.bfloat16), reason="no bf16 packing on this CPU")
IDS = torch.randint(0, 50257, (2, 12), generator=torch.Generator().manual_seed(0))


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS)


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-4), pytest.param(torch.bfloat16, 0.05, marks=NO_BF16)])
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


def test_bf16_without_packing_support_is_not_packed():
    model = random_model().to(torch.bfloat16)
    assert model.pack_weights() == packable(torch.bfloat16)
    with torch.no_grad():
        model(IDS)  # runs either way


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


def _scaled(model) -> dict:
    return {k: v * 1.5 for k, v in model.state_dict().items()}


MUTATIONS = {
    "copy_": lambda m: [w.copy_(w * 1.5) for w in (m.h[0].mlp.c_fc.weight, m.wte.weight)],
    "data.copy_": lambda m: [w.data.copy_(w * 1.5) for w in (m.h[0].mlp.c_fc.weight, m.wte.weight)],
    "data.mul_": lambda m: [w.data.mul_(1.5) for w in (m.h[1].attn.c_attn.weight, m.wte.weight)],
    "data =": lambda m: [setattr(w, "data", w.data * 1.5) for w in (m.h[0].attn.c_proj.weight, m.wte.weight)],
    "load_state_dict": lambda m: m.load_state_dict(_scaled(m)),
    "load_state_dict assign": lambda m: m.load_state_dict(_scaled(m), assign=True),
    "new Parameter": lambda m: setattr(m.h[1].mlp.c_proj, "weight", nn.Parameter(m.h[1].mlp.c_proj.weight * 1.5)),
}


@pytest.mark.parametrize("mutate", MUTATIONS.values(), ids=MUTATIONS.keys())
def test_every_kind_of_weight_change_is_seen(mutate):
    model = random_model()
    assert model.pack_weights()
    before = logits(model)  # the packed copies are in use
    with torch.no_grad():
        mutate(model)
    packed = logits(model)
    assert all(isinstance(m, PackedLinear) for block in model.h for m in (block.attn.c_attn, block.mlp.c_fc))
    model.unpack_weights()
    plain = logits(model)
    assert (packed - plain).abs().max() <= 1e-4
    assert (packed - before).abs().max() > 1e-3


def test_untied_head_is_packed_and_followed():
    model = random_model(tiny_config(tie_word_embeddings=False))
    assert model.pack_weights()
    logits(model)
    model.lm_head.weight.data.mul_(2.0)
    packed = logits(model)
    model.unpack_weights()
    assert (packed - logits(model)).abs().max() <= 1e-4


def _with_adapters(model):
    torch.manual_seed(2)  # the adapters' A
    add_lora(model, rank=2)
    with torch.no_grad():  # adapters that change the output (B starts at zero)
        for m in model.modules():
            if hasattr(m, "lora_b"):
                m.lora_b.normal_(0, 0.5, generator=torch.Generator().manual_seed(3))
    return model


def test_pack_after_add_lora():
    model = _with_adapters(random_model())
    expected = logits(model)
    assert model.pack_weights()
    assert isinstance(model.h[0].attn.c_attn.base, PackedLinear)
    assert (logits(model) - expected).abs().max() <= 1e-4
    merge_lora(model)  # folds the adapters into packed layers: they repack
    assert (logits(model) - expected).abs().max() <= 1e-4
    model.unpack_weights()
    assert type(model.h[0].attn.c_attn) is nn.Linear
    assert (logits(model) - expected).abs().max() <= 1e-4


def test_add_lora_after_pack_then_train():
    model = random_model()
    assert model.pack_weights()
    _with_adapters(model)
    plain = random_model()
    _with_adapters(plain)
    assert (logits(model) - logits(plain)).abs().max() <= 1e-4
    model.train()
    model(IDS).sum().backward()
    assert model.h[0].attn.c_attn.lora_a.grad is not None


def test_a_failed_pack_leaves_the_model_as_it_was(monkeypatch):
    from gpt2kit.model import packing

    model = random_model()
    expected = logits(model)
    calls = []
    real = packing.PackedWeight.pack

    def failing(self, weight):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("oneDNN refused")
        real(self, weight)

    monkeypatch.setattr(packing.PackedWeight, "pack", failing)
    with pytest.raises(RuntimeError):
        model.pack_weights()
    assert not any(isinstance(m, PackedLinear) for m in model.modules())
    assert not any(isinstance(p, WatchedParameter) for p in model.parameters())
    assert torch.equal(logits(model), expected)


def test_unpack_restores_plain_parameters():
    model = random_model()
    model.pack_weights()
    assert any(isinstance(p, WatchedParameter) for p in model.parameters())
    model.unpack_weights()
    assert all(type(p) is nn.Parameter for p in model.parameters())
    assert all(type(m) is not PackedLinear for m in model.modules())


def test_a_packed_model_can_be_copied():
    import copy

    model = random_model()
    model.pack_weights()
    expected = logits(model)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.h[0].mlp.c_fc.weight.mul_(2.0)
    assert torch.equal(logits(model), expected)
    packed = logits(twin)
    twin.unpack_weights()
    assert (packed - logits(twin)).abs().max() <= 1e-4
    assert (packed - expected).abs().max() > 1e-3


def test_a_model_in_eval_mode_packs_on_its_first_decode(tmp_path):
    random_model().save_pretrained(tmp_path)
    fresh = GPT2.from_pretrained(tmp_path)  # what a user has before any pack_weights() call
    assert fresh._packed_head is None
    ids = generate(fresh, [[464, 2068, 7586]], max_new_tokens=6, do_sample=False)
    assert fresh._packed_head is not None  # the fast path was taken by itself
    with torch.no_grad():
        assert (fresh(IDS) - random_model()(IDS)).abs().max() <= 1e-4  # the packed logits are the plain ones
    assert ids == generate(fresh, [[464, 2068, 7586]], max_new_tokens=6, do_sample=False)

    training = random_model().train()  # a model being trained (dropout on) is left alone
    training.new_cache(1, 8)
    assert training._packed_head is None
    opted_out = random_model()
    opted_out.auto_pack = False
    opted_out.new_cache(1, 8)
    assert opted_out._packed_head is None
