"""Generation and scoring on a Decoder that is not GPT2: a bigram table, whose log-probabilities
are known by hand. Everything goes through the public functions."""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch

from gpt2kit import Decoder, GPT2Config, Tokenizer, complete, generate, score, stream, stream_batch
from gpt2kit.backends import Cache
from gpt2kit.errors import GenerationError

V = 16  # GPT-2's ids 0..15 are the one-character tokens ! " # $ % & ' ( ) * + , - . / 0


class BigramCache:
    """Keeps the tokens it was given, so that the decoder can check the mask it is handed."""

    def __init__(self, batch_size: int) -> None:
        self.tokens = torch.zeros(batch_size, 0, dtype=torch.long)

    @property
    def length(self) -> int:
        return self.tokens.shape[1]

    def reorder(self, index: torch.Tensor) -> None:
        self.tokens = self.tokens.index_select(0, index)

    def reset(self) -> None:
        self.tokens = self.tokens[:, :0]


class Bigram:
    """Logits of the next token: table[last token], whatever came before."""

    def __init__(self, table: torch.Tensor, n_positions: int = 64) -> None:
        self.table = table
        self.config = GPT2Config(vocab_size=table.shape[0], n_positions=n_positions, n_embd=4, n_layer=1, n_head=1)
        self.generation_config: dict = {}

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def new_cache(self, batch_size: int, max_length: int | None = None) -> BigramCache:
        return BigramCache(batch_size)

    def __call__(self, input_ids, *, attention_mask=None, position_ids=None, cache=None, last_only=False):
        past = 0
        if cache is not None:
            past = cache.length
            cache.tokens = torch.cat([cache.tokens, input_ids], 1)
        assert past + input_ids.shape[1] <= self.config.n_positions
        if attention_mask is not None:
            assert attention_mask.shape == (input_ids.shape[0], past + input_ids.shape[1])
        logits = self.table[input_ids]  # (B, T, V)
        return logits[:, -1:] if last_only else logits


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_pretrained()


@pytest.fixture
def bigram():
    return Bigram(torch.randn(V, V, generator=torch.Generator().manual_seed(0)) * 3)


def logp(model: Bigram) -> torch.Tensor:
    return model.table.log_softmax(-1)


def path_logprobs(model: Bigram, prompt_last: int, ids: list[int]) -> list[float]:
    lp, prev, out = logp(model), prompt_last, []
    for t in ids:
        out.append(lp[prev, t].item())
        prev = t
    return out


def greedy_chain(model: Bigram, start: int, n: int) -> list[int]:
    out, prev = [], start
    for _ in range(n):
        prev = int(model.table[prev].argmax())
        out.append(prev)
    return out


def test_it_is_a_decoder(bigram):
    assert isinstance(bigram, Decoder) and isinstance(bigram.new_cache(2), Cache)


def test_greedy_with_top_logprobs(bigram, tok):
    (c,) = complete(bigram, tok, "#", temperature=0, max_new_tokens=6, logprobs=3)
    expected = greedy_chain(bigram, 2, 6)
    assert c.token_ids == expected and c.text == tok.decode(expected)
    assert c.logprobs == pytest.approx(path_logprobs(bigram, 2, expected), abs=1e-6)
    assert (c.prompt_tokens, c.completion_tokens, c.finish_reason) == (1, 6, "length")
    lp = logp(bigram)
    for prev, top in zip([2, *expected], c.top_logprobs, strict=False):
        values, ids = lp[prev].topk(3)
        assert list(top) == ids.tolist()
        assert list(top.values()) == pytest.approx(values.tolist(), abs=1e-6)


def test_seeded_sampling_reports_the_models_own_distribution(bigram, tok):
    kwargs = dict(max_new_tokens=8, temperature=0.7, top_k=5, num_samples=3, seed=1)
    first = complete(bigram, tok, "#", **kwargs)
    assert [c.token_ids for c in complete(bigram, tok, "#", **kwargs)] == [c.token_ids for c in first]
    assert len({tuple(c.token_ids) for c in first}) > 1
    for c in first:  # raw log-softmax: before temperature and top-k
        assert c.logprobs == pytest.approx(path_logprobs(bigram, 2, c.token_ids), abs=1e-6)
        assert c.top_logprobs is None


def test_beam_search_results_are_scored(bigram, tok):
    out = complete(bigram, tok, "#", num_beams=3, num_return_sequences=3, max_new_tokens=4, logprobs=2)
    assert len(out) == 3 and all(len(c.token_ids) == 4 for c in out)
    sums = [sum(c.logprobs) for c in out]
    assert sums == sorted(sums, reverse=True)  # equal lengths: best first by summed log-probability
    for c in out:
        assert c.logprobs == pytest.approx(path_logprobs(bigram, 2, c.token_ids), abs=1e-6)
        assert len(c.top_logprobs) == 4 and all(len(t) == 2 for t in c.top_logprobs)
    assert sums[0] >= sum(path_logprobs(bigram, 2, greedy_chain(bigram, 2, 4))) - 1e-6


def test_stop_strings_and_generation_config_ids(bigram, tok):
    free = complete(bigram, tok, "#", max_new_tokens=10, seed=3)[0]
    stop = free.text[4]  # every token is one character
    cut = free.text.find(stop)
    (c,) = complete(bigram, tok, "#", max_new_tokens=10, seed=3, stop=[stop])
    assert (c.text, c.token_ids, c.finish_reason) == (free.text[:cut], free.token_ids[:cut + 1], "stop_string")
    assert "".join(e.text for e in stream(bigram, tok, "#", max_new_tokens=10, seed=3, stop=[stop])) == c.text
    # special ids come from the decoder's generation_config, never from files
    bigram.generation_config = {"eos_token_id": free.token_ids[cut]}
    assert generate(bigram, [2], max_new_tokens=10, seed=3)[0] == free.token_ids[:cut + 1]


def test_stream_batch_events(bigram, tok):
    kwargs = dict(num_samples=2, max_new_tokens=5, temperature=0.8, seed=0, logprobs=2, stop_token_ids=[7])
    events = list(stream_batch(bigram, tok, ["#", "%&"], **kwargs))
    assert [e.index for e in events[:4]] == [0, 1, 2, 3]  # step by step, rows interleaved
    by_index = defaultdict(list)
    for e in events:
        by_index[e.index].append(e)
    expected = complete(bigram, tok, ["#", "%&"], **kwargs)
    assert sorted(by_index) == [0, 1, 2, 3]
    for i, c in enumerate(expected):
        mine = by_index[i]
        assert "".join(e.text for e in mine) == c.text
        assert [t for e in mine for t in e.token_ids] == c.token_ids
        assert [x for e in mine for x in e.logprobs] == pytest.approx(c.logprobs, abs=1e-6)
        assert [x for e in mine for x in e.top_logprobs] == c.top_logprobs
        assert [e.finish_reason for e in mine] == [None] * (len(mine) - 1) + [c.finish_reason]
        assert all(e.usage is None for e in mine[:-1])
        assert (mine[-1].usage.prompt_tokens, mine[-1].usage.completion_tokens) == (c.prompt_tokens,
                                                                                    c.completion_tokens)
        assert c.logprobs == pytest.approx(path_logprobs(bigram, tok.encode(c.prompt)[-1], c.token_ids), abs=1e-6)


def test_beams_cannot_stream(bigram, tok):
    with pytest.raises(GenerationError, match="cannot stream"):
        stream_batch(bigram, tok, ["#"], num_beams=2)


def test_no_new_tokens_still_ends_each_completion(bigram, tok):
    events = list(stream_batch(bigram, tok, ["#", "$"], max_new_tokens=0))
    assert [(e.index, e.token_ids, e.finish_reason, e.usage.completion_tokens) for e in events] == \
        [(0, [], "length", 0), (1, [], "length", 0)]


def test_score(bigram, tok):
    lp = logp(bigram)
    ids = [2, 5, 7, 1, 1, 9]
    a, b = score(bigram, [ids, [3]], top_logprobs=2)
    assert a.token_ids == ids and a.logprobs[0] is None and a.top_logprobs[0] is None
    assert a.logprobs[1:] == pytest.approx(path_logprobs(bigram, ids[0], ids[1:]), abs=1e-6)
    assert list(a.top_logprobs[1]) == lp[2].topk(2).indices.tolist()
    assert (b.logprobs, b.top_logprobs) == ([None], [None])
    (text,) = score(bigram, '#&(', tokenizer=tok)
    assert text.token_ids == [2, 5, 7] and text.top_logprobs is None


def test_score_past_the_context_scores_every_token_once(tok):
    short = Bigram(torch.randn(V, V, generator=torch.Generator().manual_seed(1)), n_positions=8)
    ids = torch.randint(0, V, (30,), generator=torch.Generator().manual_seed(2)).tolist()
    (s,) = score(short, ids, batch_size=3)  # the decoder refuses more than 8 tokens at once
    assert s.logprobs[1:] == pytest.approx(path_logprobs(short, ids[0], ids[1:]), abs=1e-6)
