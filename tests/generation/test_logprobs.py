"""Log-probabilities of generated tokens against transformers on the same random weights: its
log-softmax of `output_logits` (and `output_scores`, which equal them when greedy), and of a
plain forward pass over the finished sequence."""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch

from gpt2kit import Tokenizer, complete, stream, stream_batch
from helpers import hf_pair, tiny_config

TOL = 1e-5
PROMPTS = ["The quick brown fox", "A", "In the beginning God created the heaven"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return hf_pair(tmp_path_factory.mktemp("logprobs"), tiny_config(n_positions=128))


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_pretrained()


def hf_sequence_logprobs(hf, prompt: list[int], generated: list[int]) -> torch.Tensor:
    """(len(generated), V) log-softmax of transformers' logits at each generated position."""
    with torch.no_grad():
        logits = hf(torch.tensor([prompt + generated])).logits[0].float()
    return logits[len(prompt) - 1:-1].log_softmax(-1)


def assert_matches(logprobs, top_logprobs, ids, reference: torch.Tensor) -> None:
    """Our chosen and top log-probabilities against (T, V) reference log-softmax rows."""
    assert len(logprobs) == len(ids) == reference.shape[0]
    chosen = reference.gather(1, torch.tensor(ids)[:, None])[:, 0]
    assert (torch.tensor(logprobs) - chosen).abs().max() <= TOL
    if top_logprobs is not None:
        for top, row in zip(top_logprobs, reference, strict=True):
            assert (torch.tensor(list(top.values())) - row[list(top)]).abs().max() <= TOL
            assert min(top.values()) >= row.topk(len(top)).values[-1] - TOL  # they are the likeliest


def test_greedy_matches_generate_logits_and_scores(pair, tok):
    hf, ours = pair
    prompt = tok.encode(PROMPTS[0])
    with torch.no_grad():
        ref = hf.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False, pad_token_id=50256,
                          output_scores=True, output_logits=True, return_dict_in_generate=True)
    ids = ref.sequences[0, len(prompt):].tolist()
    logits = torch.stack(ref.logits, 1)[0].float().log_softmax(-1)
    scores = torch.stack(ref.scores, 1)[0].float().log_softmax(-1)
    (c,) = complete(ours, tok, PROMPTS[0], temperature=0, max_new_tokens=20, logprobs=5)
    assert c.token_ids == ids
    assert_matches(c.logprobs, c.top_logprobs, ids, logits)
    assert_matches(c.logprobs, c.top_logprobs, ids, scores)
    events = list(stream(ours, tok, PROMPTS[0], temperature=0, max_new_tokens=20, logprobs=5))
    assert_matches([x for e in events for x in e.logprobs], [x for e in events for x in e.top_logprobs],
                   [t for e in events for t in e.token_ids], logits)


def test_left_padded_batch_matches_generate(pair, tok):
    hf, ours = pair
    prompts = [tok.encode(p) for p in PROMPTS]
    width = max(map(len, prompts))
    ids = torch.tensor([[50256] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        ref = hf.generate(ids, attention_mask=mask, max_new_tokens=15, do_sample=False, pad_token_id=50256,
                          output_logits=True, return_dict_in_generate=True)
    logits = torch.stack(ref.logits, 1).float().log_softmax(-1)  # (B, steps, V)
    rows = defaultdict(list)
    for e in stream_batch(ours, tok, PROMPTS, temperature=0, max_new_tokens=15, logprobs=3):
        rows[e.index].append(e)
    for r in range(len(PROMPTS)):
        got = [t for e in rows[r] for t in e.token_ids]
        assert got == ref.sequences[r, width:width + len(got)].tolist()
        assert_matches([x for e in rows[r] for x in e.logprobs], [x for e in rows[r] for x in e.top_logprobs],
                       got, logits[r, :len(got)])


def test_sampled_and_beam_completions_match_a_forward_pass(pair, tok):
    hf, ours = pair
    sampled = complete(ours, tok, PROMPTS, max_new_tokens=12, temperature=0.8, top_k=20, num_samples=2, seed=0,
                       logprobs=2, repetition_penalty=1.3)
    beams = complete(ours, tok, PROMPTS, max_new_tokens=8, num_beams=3, num_return_sequences=2, logprobs=2)
    for c in sampled + beams:
        prompt = tok.encode(c.prompt)
        assert (c.prompt_tokens, c.completion_tokens) == (len(prompt), len(c.token_ids))
        assert_matches(c.logprobs, c.top_logprobs, c.token_ids, hf_sequence_logprobs(hf, prompt, c.token_ids))
