"""Decoding against transformers' generate() and logits warpers on the same random weights."""

from __future__ import annotations

import json

import pytest
import torch

from gpt2kit import GPT2, generate
from gpt2kit.errors import ConfigError, GenerationError
from helpers import hf_pair, random_model, tiny_config

PROMPTS = [[464], [464, 3290, 318, 257], list(range(1000, 1030))]


@pytest.mark.parametrize("prompt", PROMPTS, ids=["1-token", "4-tokens", "30-tokens"])
def test_greedy_matches_transformers(tmp_path, prompt):
    hf, ours = hf_pair(tmp_path, tiny_config(n_positions=128))
    out = generate(ours, prompt, max_new_tokens=40, temperature=0)
    with torch.no_grad():
        ref = hf.generate(torch.tensor([prompt]), max_new_tokens=40, do_sample=False, pad_token_id=50256)
    assert out == [ref[0, len(prompt):].tolist()]


def test_seed_makes_samples_reproducible(tiny_model):
    kwargs = dict(max_new_tokens=20, temperature=0.9, top_k=50, top_p=0.95, num_samples=3)
    a = generate(tiny_model, [464, 3290], seed=7, **kwargs)
    b = generate(tiny_model, [464, 3290], seed=7, **kwargs)
    c = generate(tiny_model, [464, 3290], seed=8, **kwargs)
    assert a == b and a != c
    assert len({tuple(s) for s in a}) == 3  # samples in a batch are independent
    assert all(len(s) == 20 for s in a)


def test_top_k_1_is_greedy(tiny_model):
    assert generate(tiny_model, [10, 20], max_new_tokens=15, top_k=1, seed=0) == \
        generate(tiny_model, [10, 20], max_new_tokens=15, temperature=0)


def test_stops_at_eos(tiny_model):
    free = generate(tiny_model, [5], max_new_tokens=10, temperature=0, eos_token_id=None)[0]
    stopped = generate(tiny_model, [5], max_new_tokens=10, temperature=0, eos_token_id=free[3])[0]
    assert stopped == free[: free.index(free[3]) + 1]


def test_generates_past_the_context(tiny_model):
    ctx = tiny_model.config.n_positions
    out = generate(tiny_model, list(range(100, 120)), max_new_tokens=3 * ctx, temperature=0, eos_token_id=None)
    assert len(out[0]) == 3 * ctx


def test_window_slides_to_the_last_three_quarters():
    model = random_model(tiny_config(n_positions=16))
    prompt = list(range(300, 310))
    out = generate(model, prompt, max_new_tokens=8, temperature=0, eos_token_id=None)[0]
    seq = prompt + out  # 18 tokens: the 7th new token was predicted from all 16, the 8th after a slide
    with torch.no_grad():
        expected = model(torch.tensor([seq[17 - 12:17]]))[0, -1].argmax().item()
    assert out[7] == expected


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(temperature=-1), "temperature"),
        (dict(top_p=0), "top-p"),
        (dict(top_p=1.5), "top-p"),
        (dict(top_k=-1), "top-k"),
        (dict(max_new_tokens=-1), "max-new-tokens"),
        (dict(num_samples=0), "num-samples"),
        (dict(beams=3), "unknown generation setting"),
        (dict(temperature=float("nan")), "finite"),
        (dict(logprobs=21), "logprobs must be at most 20"),
        (dict(logprobs=-1), "logprobs must be an integer >= 0"),
    ],
)
def test_invalid_settings(tiny_model, kwargs, message):
    with pytest.raises(GenerationError, match=message):
        generate(tiny_model, [1, 2], **kwargs)


def test_invalid_prompts(tiny_model):
    with pytest.raises(GenerationError, match="empty"):
        generate(tiny_model, [], max_new_tokens=1)
    with pytest.raises(GenerationError, match="leaves no room"):
        generate(tiny_model, [1] * 64, max_new_tokens=1)
    with pytest.raises(GenerationError, match="outside the vocabulary"):
        generate(tiny_model, [50257], max_new_tokens=1)


# ---- batches, stopping and lengths ----------------------------------------------------------------


def test_padded_batch_equals_each_prompt_alone(tiny_model):
    prompts = [[464, 3290, 318, 257, 1049, 11], [10], [7, 8, 9]]
    batch = generate(tiny_model, prompts, max_new_tokens=20, temperature=0, eos_token_id=None)
    alone = [generate(tiny_model, p, max_new_tokens=20, temperature=0, eos_token_id=None)[0] for p in prompts]
    assert batch == alone


def sharp(model):
    """Random weights scaled up, so greedy output depends on the context instead of repeating one
    token (a drifting window then shows as different ids)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(5)
    return model


MIXED = [[5, 900, 17, 4, 33, 250, 999, 8, 61, 700, 12], [1], [42, 43, 44], [300, 301, 302, 303, 304, 305]]


@pytest.mark.parametrize("seed", [0, 1])
def test_padded_batch_equals_alone_far_past_the_context(seed):
    ctx = 32
    model = sharp(random_model(tiny_config(n_positions=ctx, vocab_size=1000), seed=seed))
    kwargs = dict(max_new_tokens=3 * ctx, temperature=0, eos_token_id=None)
    batch = generate(model, MIXED, **kwargs)
    alone = [generate(model, p, **kwargs)[0] for p in MIXED]
    assert [len(s) for s in batch] == [3 * ctx] * len(MIXED)
    assert all(len(set(s)) > 3 for s in alone)  # not a loop of one token, which would hide a drift
    for row, (got, expected) in enumerate(zip(batch, alone, strict=True)):
        drift = next((i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b), None)
        assert drift is None, f"row {row} drifts from new token {drift}"


def test_small_vocabulary_batches_with_its_own_ids(tmp_path):
    """A 1000-token model saved with GPT-2's special ids (50256, outside its vocabulary): padding
    and stopping use ids it has. Batched rows equal each prompt alone and transformers' output."""
    hf, ours = hf_pair(tmp_path, tiny_config(vocab_size=1000))
    sharp(hf), sharp(ours)
    batch = generate(ours, MIXED, max_new_tokens=20, temperature=0)
    assert batch == [generate(ours, p, max_new_tokens=20, temperature=0)[0] for p in MIXED]
    width = max(map(len, MIXED))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in MIXED])
    mask = (ids != -1).long()
    for r, p in enumerate(MIXED):
        mask[r, :width - len(p)] = 0
    with torch.no_grad():
        ref = hf.generate(ids, attention_mask=mask, max_new_tokens=20, do_sample=False, pad_token_id=0)
    assert batch == [row[width:].tolist() for row in ref]
    beams = generate(ours, MIXED, max_new_tokens=6, num_beams=2)
    assert [len(s) for s in beams] == [6] * len(MIXED)


def test_generation_config_ids_are_the_defaults(tmp_path):
    model = sharp(random_model(tiny_config(vocab_size=1000), seed=1))
    prompt = MIXED[3]
    free = generate(model, prompt, max_new_tokens=12, temperature=0, eos_token_id=None)[0]
    first = [i for i, t in enumerate(free) if i >= 2 and t not in free[:i]]  # tokens new at step i
    stop, other = free[first[0]], free[first[1]]
    expected = free[:first[0] + 1]
    model.save_pretrained(tmp_path / "m")
    config = tmp_path / "m" / "generation_config.json"
    config.write_text(json.dumps({"eos_token_id": stop, "pad_token_id": 3}))
    loaded = GPT2.from_pretrained(tmp_path / "m")
    assert generate(loaded, prompt, max_new_tokens=12, temperature=0)[0] == expected
    assert generate(loaded, prompt, max_new_tokens=12, temperature=0, eos_token_id=None)[0] == free
    config.write_text(json.dumps({"eos_token_id": [other, stop]}))  # transformers allows a list
    assert generate(GPT2.from_pretrained(tmp_path / "m"), prompt, max_new_tokens=12, temperature=0)[0] == expected
    config.write_text(json.dumps({"eos_token_id": "end"}))
    with pytest.raises(ConfigError, match="eos_token_id must be a token id"):
        generate(GPT2.from_pretrained(tmp_path / "m"), prompt, max_new_tokens=2)


def test_special_ids_outside_the_vocabulary_are_refused():
    model = random_model(tiny_config(vocab_size=1000))
    for name in ("pad_token_id", "eos_token_id"):
        with pytest.raises(GenerationError, match=f"{name.replace('_', '-')}: token id 50256 is outside"):
            generate(model, [[1, 2], [3]], max_new_tokens=2, **{name: 50256})


def test_num_samples_and_batch_size(tiny_model):
    kwargs = dict(max_new_tokens=6, temperature=0, eos_token_id=None)
    out = generate(tiny_model, [[1, 2], [3]], num_samples=3, **kwargs)
    assert len(out) == 6 and out[0] == out[1] == out[2] and out[3] == out[4] == out[5]
    assert generate(tiny_model, [[1, 2], [3]], num_samples=3, batch_size=2, **kwargs) == out


class Recording:
    """A Decoder that records the shape of what it is given."""

    def __init__(self, model) -> None:
        self.model, self.config, self.generation_config, self.shapes = model, model.config, {}, []
        self.device, self.new_cache = model.device, model.new_cache

    def __call__(self, input_ids, **kwargs):
        self.shapes.append(tuple(input_ids.shape))
        return self.model(input_ids, **kwargs)


@pytest.mark.parametrize("settings", [dict(temperature=0), dict(num_beams=2)], ids=["greedy", "beams"])
def test_a_prompt_shared_by_rows_is_prefilled_once(tiny_model, settings):
    prompts = [[1, 2, 3], [4, 5], [1, 2, 3]]
    kwargs = dict(max_new_tokens=5, eos_token_id=None, **settings)
    samples = 1 if "num_beams" in settings else 2
    recording = Recording(tiny_model)
    out = generate(recording, prompts, num_samples=samples, **kwargs)
    rows = 2 * len(prompts)  # two samples, or two beams, per prompt
    assert recording.shapes[0] == (2, 3) and set(recording.shapes[1:]) == {(rows, 1)}
    alone = [generate(tiny_model, p, **kwargs)[0] for p in prompts]
    assert out[::samples] == alone and out[samples - 1::samples] == alone


def test_max_length_counts_the_prompt(tiny_model):
    out = generate(tiny_model, [[1, 2, 3, 4, 5], [6]], max_new_tokens=None, max_length=8, temperature=0,
                   eos_token_id=None)
    assert [len(s) for s in out] == [3, 7]
    assert len(generate(tiny_model, [1], max_new_tokens=4, max_length=50, eos_token_id=None)[0]) == 4


def test_stop_token_ids_and_min_new_tokens(tiny_model):
    free = generate(tiny_model, [5], max_new_tokens=12, temperature=0, eos_token_id=None)[0]
    target = free[2]
    assert generate(tiny_model, [5], max_new_tokens=12, temperature=0, eos_token_id=None,
                    stop_token_ids=[target])[0] == free[: free.index(target) + 1]
    later = generate(tiny_model, [5], max_new_tokens=12, temperature=0, eos_token_id=None,
                     stop_token_ids=[target], min_new_tokens=6)[0]
    assert len(later) >= 6 and target not in later[:6]


def test_stop_string_across_token_boundaries_is_caught_and_cut(tiny_model):
    from gpt2kit import Tokenizer, complete

    tok = Tokenizer.from_pretrained()
    kwargs = dict(max_new_tokens=12, seed=5, eos_token_id=None)  # sampled: greedy output of random weights repeats
    free = complete(tiny_model, tok, "The", **kwargs)[0]
    pieces = [tok.decode([t]) for t in free.token_ids]
    boundary = len("".join(pieces[:4]))
    stop = free.text[boundary - 2: boundary + 2]  # two characters of token 4, two of token 5
    assert len(pieces[3]) >= 2 and len(pieces[4]) >= 2 and free.text.find(stop) == boundary - 2
    cut = complete(tiny_model, tok, "The", stop=[stop], **kwargs)[0]
    assert cut.finish_reason == "stop_string"
    assert cut.text == free.text[: boundary - 2]
    assert cut.token_ids == free.token_ids[:5]


def test_twice_the_context_in_new_tokens():
    # GPT-2's 2000 tokens past a 1024 context, scaled down: the window slides the same way (keeping its
    # last three quarters) at a sixteenth of the cost per step and per slide
    model = random_model(tiny_config(n_positions=64))
    out = generate(model, [464, 3290], max_new_tokens=125, temperature=0.9, top_k=50, seed=0, eos_token_id=None)
    assert len(out[0]) == 125
    assert all(0 <= t < 50257 for t in out[0])


def test_unconditional_and_tensor_prompts(tiny_model):
    a = generate(tiny_model, torch.tensor([50256]), max_new_tokens=5, seed=1)
    b = generate(tiny_model, [50256], max_new_tokens=5, seed=1)
    c = generate(tiny_model, torch.tensor([[50256], [50256]]), max_new_tokens=5, seed=1)
    assert a == b and len(c) == 2


def test_gumbel_max_samples_the_softmax_distribution():
    from gpt2kit.generation.sampling import gumbel_max, sample

    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(20000, 4)
    expected = logits[0].softmax(-1)
    gen = torch.Generator().manual_seed(0)
    for draw in (gumbel_max, sample):
        freq = torch.bincount(draw(logits, gen), minlength=4).float() / 20000
        assert torch.allclose(freq, expected, atol=0.015), (draw.__name__, freq, expected)


def test_sampling_among_few_survivors_follows_their_softmax():
    """After top-k, sample() draws among the tokens left (not the whole vocabulary): same distribution."""
    from gpt2kit.generation.sampling import sample

    logits = torch.full((20000, 1024), float("-inf"))  # 4 of 1,024 left: few enough to draw among them
    survivors = torch.tensor([7, 300, 512, 1023])
    logits[:, survivors] = torch.tensor([2.0, 1.0, 0.0, -1.0])
    draws = sample(logits, torch.Generator().manual_seed(0))
    assert set(draws.tolist()) <= set(survivors.tolist())
    freq = torch.stack([(draws == t).float().mean() for t in survivors])
    assert torch.allclose(freq, torch.tensor([2.0, 1.0, 0.0, -1.0]).softmax(-1), atol=0.015)


def test_gumbel_sampler_in_generate(tiny_model):
    a = generate(tiny_model, [1, 2], max_new_tokens=8, sampler="gumbel", seed=3, top_k=20)
    assert a == generate(tiny_model, [1, 2], max_new_tokens=8, sampler="gumbel", seed=3, top_k=20)
    assert a != generate(tiny_model, [1, 2], max_new_tokens=8, seed=3, top_k=20)  # another way to draw


def test_gumbel_softmax_decode_is_differentiable(tiny_model):
    from gpt2kit.generation.gumbel import gumbel_softmax_decode

    out = gumbel_softmax_decode(tiny_model, [[1, 2, 3], [4, 5, 6]], max_new_tokens=5, tau=0.5, hard=True, seed=0)
    assert out.token_ids.shape == (2, 5) and out.soft_tokens.shape == (2, 5, 50257)
    assert torch.equal(out.soft_tokens.sum(-1), torch.ones(2, 5))  # exactly one-hot forward values
    assert torch.equal(out.soft_tokens.argmax(-1), out.token_ids)
    # hard one-hot embeddings are the token embeddings, so the plain model agrees on every step's input
    (out.soft_tokens * torch.randn(50257)).sum().backward()
    assert tiny_model.h[0].attn.c_attn.weight.grad.abs().sum() > 0
    again = gumbel_softmax_decode(tiny_model, [[1, 2, 3], [4, 5, 6]], max_new_tokens=5, tau=0.5, hard=True, seed=0)
    assert torch.equal(again.token_ids, out.token_ids)


def test_gumbel_softmax_samples_follow_the_softmax():
    from gpt2kit.generation.sampling import gumbel_softmax

    logits = torch.tensor([[1.5, 0.5, 0.0, -1.0]]).expand(20000, 4)
    y = gumbel_softmax(logits, tau=0.7, hard=True, generator=torch.Generator().manual_seed(1))
    freq = y.sum(0) / 20000
    assert torch.allclose(freq, logits[0].softmax(-1), atol=0.015)
    soft = gumbel_softmax(logits[:5], tau=5.0, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(soft.sum(-1), torch.ones(5)) and soft.max() < 0.9  # a high tau is smooth


def test_stop_strings_before_min_new_tokens_are_passed_over(tiny_model):
    from gpt2kit import Tokenizer, complete

    tok = Tokenizer.from_pretrained()
    forced = [tok.encode(t)[0] for t in ("A", ".", "B", ".", "C", ".", "D")]

    def force(ids, logits):  # the prompt is one token: step n emits forced[n]
        n = ids.shape[1] - 1
        return logits.masked_fill(torch.arange(logits.shape[-1]) != forced[n], float("-inf"))

    kwargs = dict(max_new_tokens=7, logits_hooks=[force], temperature=0, eos_token_id=None, stop=["."])
    assert complete(tiny_model, tok, "x", **kwargs)[0].text == "A"
    late = complete(tiny_model, tok, "x", min_new_tokens=3, **kwargs)[0]
    assert late.text == "A.B" and late.token_ids == forced[:4] and late.finish_reason == "stop_string"
    from gpt2kit import stream

    assert "".join(e.text for e in stream(tiny_model, tok, "x", min_new_tokens=3, **kwargs)) == "A.B"


def test_do_sample_false_is_greedy(tiny_model):
    assert generate(tiny_model, [10, 20], max_new_tokens=8, do_sample=False, seed=1) == \
        generate(tiny_model, [10, 20], max_new_tokens=8, temperature=0)
