"""The model against transformers' GPT2LMHeadModel on the same random weights (fp32, max |diff| <= 1e-4)."""

from __future__ import annotations

import pytest
import torch

from gpt2kit import GPT2, GPT2Config
from gpt2kit.config import PRESETS
from helpers import hf_pair, random_model, tiny_config

ATOL = 1e-4


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(n_layer=3, n_head=2, n_embd=48), dict(n_layer=1, n_head=8, n_embd=128, n_inner=96)],
    ids=["tiny", "odd-shape", "custom-inner"],
)
def test_logits_match_transformers(tmp_path, overrides):
    hf, ours = hf_pair(tmp_path, tiny_config(**overrides))
    ids = torch.randint(0, 50257, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert max_diff(ours(ids), hf(ids).logits) <= ATOL


def test_full_gpt2_shape_matches_transformers(tmp_path):
    config = GPT2Config.from_name("gpt2", embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)
    hf, ours = hf_pair(tmp_path, config)
    assert ours.num_parameters() == 124_439_808
    ids = torch.randint(0, 50257, (2, 64), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert max_diff(ours(ids), hf(ids).logits) <= ATOL


@pytest.mark.parametrize(
    "name,count",
    [("gpt2", 124_439_808), ("gpt2-medium", 354_823_168), ("gpt2-large", 774_030_080), ("gpt2-xl", 1_557_611_200)],
)
def test_published_sizes_parameter_counts(name, count):
    with torch.device("meta"):
        model = GPT2(GPT2Config.from_name(name))
    assert model.num_parameters() == count


def test_size_aliases():
    assert GPT2Config.from_name("355M") == GPT2Config.from_name("gpt2-medium")
    assert set(PRESETS) >= {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}


def test_cached_decoding_equals_full_recomputation(tiny_model):
    ids = torch.randint(0, 50257, (2, 30), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = tiny_model(ids)
        cache = tiny_model.new_cache(batch_size=2)
        chunks = [tiny_model(ids[:, :10], cache=cache)]  # prefill, then one token at a time, then a chunk
        chunks += [tiny_model(ids[:, t:t + 1], cache=cache) for t in range(10, 20)]
        chunks.append(tiny_model(ids[:, 20:], cache=cache))
    assert cache.length == 30
    assert max_diff(torch.cat(chunks, dim=1), full) <= 1e-5


def test_last_only_is_the_last_position(tiny_model):
    ids = torch.randint(0, 50257, (1, 12))
    with torch.no_grad():
        assert max_diff(tiny_model(ids, last_only=True)[:, 0], tiny_model(ids)[:, -1]) <= 1e-5


def test_left_padding_with_mask_matches_transformers_and_unpadded(tmp_path):
    hf, ours = hf_pair(tmp_path)
    ids = torch.randint(0, 50257, (2, 12), generator=torch.Generator().manual_seed(4))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[0, :5] = 0  # row 0 is a 7-token prompt padded on the left
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        ours_logits = ours(ids, attention_mask=mask)
        hf_logits = hf(ids, attention_mask=mask, position_ids=position_ids).logits
        alone = ours(ids[:1, 5:])
    assert torch.isfinite(ours_logits).all()
    assert max_diff(ours_logits[:, 5:], hf_logits[:, 5:]) <= ATOL
    assert max_diff(ours_logits[0, 5:], alone[0]) <= 1e-5


def test_left_padding_with_cache(tiny_model):
    ids = torch.randint(0, 50257, (2, 16), generator=torch.Generator().manual_seed(5))
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, :6] = 0
    with torch.no_grad():
        full = tiny_model(ids, attention_mask=mask)
        cache = tiny_model.new_cache(2)
        first = tiny_model(ids[:, :10], attention_mask=mask[:, :10], cache=cache)
        rest = [tiny_model(ids[:, t:t + 1], attention_mask=mask[:, :t + 1], cache=cache) for t in range(10, 16)]
    assert max_diff(torch.cat([first, *rest], 1)[1, 6:], full[1, 6:]) <= 1e-5


def test_dropout_only_in_training():
    model = random_model(tiny_config(embd_pdrop=0.1, attn_pdrop=0.1, resid_pdrop=0.1))
    ids = torch.randint(0, 50257, (1, 16))
    with torch.no_grad():
        assert torch.equal(model(ids), model(ids))
        model.train()
        assert not torch.equal(model(ids), model(ids))


def test_set_dropout_reaches_every_dropout():
    model = random_model(tiny_config(embd_pdrop=0.1, attn_pdrop=0.1, resid_pdrop=0.1))
    ids = torch.randint(0, 50257, (1, 16))
    with torch.no_grad():
        expected = model(ids)
        model.train().set_dropout(0.0)
        torch.testing.assert_close(model(ids), expected, atol=1e-5, rtol=1e-5)  # no dropout left anywhere
        model.set_dropout(0.5)
        assert not torch.allclose(model(ids), expected, atol=1e-3)


def test_context_overflow_is_refused(tiny_model):
    with pytest.raises(ValueError, match="exceeds the context"):
        tiny_model(torch.zeros(1, 65, dtype=torch.long))


def test_module_names_follow_the_checkpoint(tiny_model):
    names = set(tiny_model.state_dict())
    assert {"wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.0.attn.c_attn.weight", "h.1.mlp.c_fc.bias",
            "ln_f.bias"} <= names
    assert not any("lm_head" in n for n in names)  # tied to wte


def test_bf16_runs_close_to_fp32(tiny_model):
    ids = torch.randint(0, 50257, (1, 16))
    with torch.no_grad():
        ref = tiny_model(ids)
        low = tiny_model.to(torch.bfloat16)(ids)
    assert low.dtype == torch.bfloat16
    assert max_diff(low, ref) < 0.1 * ref.abs().max().item()
