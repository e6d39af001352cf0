"""transformers' GPT-2 config options (attention scaling, upcasting, an untied LM head) against
transformers itself: its save_pretrained loaded by gpt2kit, and gpt2kit's save loaded back by it."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import transformers

from gpt2kit import GPT2, GPT2Config
from gpt2kit.errors import ConfigError, WeightsError
from gpt2kit.weights import save_model
from helpers import random_model, tiny_config

OPTIONS = {
    "unscaled": dict(scale_attn_weights=False),
    "inverse-layer-idx": dict(scale_attn_by_inverse_layer_idx=True),
    "reorder-upcast": dict(reorder_and_upcast_attn=True),
    "untied": dict(tie_word_embeddings=False),
    "all": dict(scale_attn_weights=False, scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True,
                tie_word_embeddings=False),
}
IDS = torch.randint(0, 50257, (2, 24), generator=torch.Generator().manual_seed(0))


def hf_model(seed: int = 0, **options) -> transformers.GPT2LMHeadModel:
    """transformers' model built from its own config class (eager attention: the path that
    honours reorder_and_upcast_attn), random values in every tensor."""
    config = transformers.GPT2Config(n_layer=3, n_head=4, n_embd=64, n_positions=64, embd_pdrop=0.0,
                                     attn_pdrop=0.0, resid_pdrop=0.0, **options)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


def logits(model, ids=IDS) -> torch.Tensor:
    with torch.no_grad():
        out = model(ids)
    return getattr(out, "logits", out).float()


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_options_match_transformers_both_ways(tmp_path, options):
    hf = hf_model(**options)
    hf.save_pretrained(tmp_path / "hf")
    ours = GPT2.from_pretrained(tmp_path / "hf")
    for key, value in options.items():
        assert getattr(ours.config, key) == value
    assert (logits(ours) - logits(hf)).abs().max() <= 1e-5
    # and gpt2kit's save, read back by transformers
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "ours", attn_implementation="eager").eval()
    for key, value in options.items():
        assert getattr(back.config, key) == value
    assert (logits(back) - logits(hf)).abs().max() <= 1e-5


def test_options_change_the_logits():
    # each option is a different model: a test that passed with the option ignored would mean nothing
    plain = logits(hf_model())
    for name in ("unscaled", "inverse-layer-idx", "untied"):
        assert (logits(hf_model(**OPTIONS[name])) - plain).abs().max() > 1e-3, name


def test_untied_head_is_its_own_tensor(tmp_path):
    hf = hf_model(tie_word_embeddings=False)
    hf.save_pretrained(tmp_path / "hf")
    ours = GPT2.from_pretrained(tmp_path / "hf")
    assert torch.equal(ours.lm_head.weight, hf.lm_head.weight)
    assert not torch.equal(ours.lm_head.weight, ours.wte.weight)
    assert "lm_head.weight" in ours.state_dict()
    assert "lm_head.weight" not in random_model().state_dict()  # tied models save no head


def test_untied_head_through_training_loss():
    from gpt2kit.training.trainer import lm_loss

    model = random_model(tiny_config(tie_word_embeddings=False))
    with torch.no_grad():
        model.lm_head.weight.mul_(3.0)  # any head that is not wte
    x = torch.randint(0, 50257, (2, 16), generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 50257, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        assert abs(lm_loss(model, x, y).item() - expected.item()) <= 1e-4


def test_untied_head_with_lora_and_merge(tmp_path):
    from gpt2kit.training.lora import add_lora, merge_lora

    model = random_model(tiny_config(tie_word_embeddings=False))
    expected = logits(model)
    add_lora(model, rank=2)
    assert not model.lm_head.weight.requires_grad
    merge_lora(model)
    model.save_pretrained(tmp_path / "m")
    back = GPT2.from_pretrained(tmp_path / "m")
    assert torch.equal(back.lm_head.weight, model.lm_head.weight)
    assert (logits(back) - expected).abs().max() <= 1e-5


def test_upcast_attention_equals_transformers_in_bf16():
    from gpt2kit.model.gpt2 import upcast_attention

    config = transformers.GPT2Config(n_layer=3, n_head=4, n_embd=64, reorder_and_upcast_attn=True,
                                     scale_attn_by_inverse_layer_idx=True)
    attn = transformers.models.gpt2.modeling_gpt2.GPT2Attention(config, layer_idx=2).eval()
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 40, 16, generator=gen).mul(4).to(torch.bfloat16) for _ in range(3))
    causal = torch.full((40, 40), torch.finfo(torch.float32).min).triu(1)[None, None]
    with torch.no_grad():
        reference, _ = attn._upcast_and_reordered_attn(q, k, v, causal)  # (B, T, nh, hs)
    ours = upcast_attention(q, k, v, None, True, 0.0, GPT2Config(n_layer=3, n_head=4, n_embd=64,
                            scale_attn_by_inverse_layer_idx=True).attn_scale(2)).transpose(1, 2)
    bf16_scores = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.25 / 3).transpose(1, 2)
    assert (ours.float() - reference.float()).abs().max() <= 1e-3
    assert (bf16_scores.float() - reference.float()).abs().max() > 2e-2  # what the upcast is for


def test_upcast_path_runs_in_bf16_only(tmp_path):
    hf_model(reorder_and_upcast_attn=True).save_pretrained(tmp_path / "hf")
    for dtype, differs in ((torch.bfloat16, True), (torch.float32, False)):
        ours = GPT2.from_pretrained(tmp_path / "hf", dtype=dtype)
        plain = GPT2.from_pretrained(tmp_path / "hf", dtype=dtype)
        for block in plain.h:
            block.attn.upcast = False
        assert bool((logits(ours) - logits(plain)).abs().max() > 0) == differs


def test_config_round_trip_keeps_the_options(tmp_path):
    data = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, **OPTIONS["all"]).to_dict()
    config = GPT2Config.from_hf_dict(data)
    for key, value in OPTIONS["all"].items():
        assert getattr(config, key) == value
    config.save(tmp_path / "config.json")
    written = json.loads((tmp_path / "config.json").read_text())
    for key, value in OPTIONS["all"].items():
        assert written[key] == value
    assert GPT2Config.from_file(tmp_path / "config.json") == config


@pytest.mark.parametrize("key,value", [("scale_attn_weights", "no"), ("tie_word_embeddings", 0),
                                       ("reorder_and_upcast_attn", None)])
def test_option_of_the_wrong_type_is_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        GPT2Config.from_hf_dict({"n_embd": 32, "n_layer": 2, "n_head": 2, key: value})


def test_cross_attention_is_refused():
    with pytest.raises(ConfigError, match="add_cross_attention"):
        GPT2Config.from_hf_dict({"n_embd": 32, "n_layer": 2, "n_head": 2, "add_cross_attention": True})


def test_tied_config_with_a_different_head_is_refused(tmp_path):
    hf_model(tie_word_embeddings=False).save_pretrained(tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": True}))
    with pytest.raises(WeightsError, match="lm_head.weight.*tie_word_embeddings") as err:
        GPT2.from_pretrained(tmp_path / "hf")
    assert "\n" not in str(err.value)


def test_tied_head_saved_beside_wte_loads(tmp_path):
    # older transformers saved GPT2LMHeadModel's tied head as a copy of wte
    hf = hf_model()
    (tmp_path / "bin").mkdir()
    hf.config.save_pretrained(tmp_path / "bin")
    state = {k: v.clone() for k, v in hf.state_dict().items()}
    assert "lm_head.weight" in state
    torch.save(state, tmp_path / "bin" / "pytorch_model.bin")
    assert (logits(GPT2.from_pretrained(tmp_path / "bin")) - logits(hf)).abs().max() <= 1e-5


@pytest.mark.parametrize("options", [OPTIONS["untied"], OPTIONS["unscaled"], OPTIONS["inverse-layer-idx"],
                                     OPTIONS["reorder-upcast"]], ids=["untied", "unscaled", "inverse", "upcast"])
def test_openai_layout_refuses_what_hparams_cannot_hold(tmp_path, options):
    model = random_model(tiny_config(**options))
    key = next(iter(options))
    with pytest.raises(WeightsError, match=key):
        save_model(model, tmp_path / "oa", fmt="openai")
    assert not (tmp_path / "oa").exists()
