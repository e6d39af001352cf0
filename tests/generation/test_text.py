"""Text-level generation: complete() and stream()."""

from __future__ import annotations

import pytest

from gpt2kit import Tokenizer, complete, stream
from gpt2kit.errors import GenerationError


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_pretrained()


def test_stream_pieces_join_to_the_completion(tiny_model, tok):
    kwargs = dict(max_new_tokens=30, seed=2, eos_token_id=None)
    pieces = [e.text for e in stream(tiny_model, tok, "Once upon a time", **kwargs)]
    assert len([p for p in pieces if p]) > 1
    assert "".join(pieces) == complete(tiny_model, tok, "Once upon a time", **kwargs)[0].text


def test_stream_never_shows_a_stop_string(tiny_model, tok):
    kwargs = dict(max_new_tokens=20, seed=4, eos_token_id=None)
    full = complete(tiny_model, tok, "A", **kwargs)[0].text
    stop = full[len(full) // 2: len(full) // 2 + 3]
    pieces = [e.text for e in stream(tiny_model, tok, "A", stop=[stop], **kwargs)]
    assert "".join(pieces) == full[: full.find(stop)]
    assert all(stop not in p for p in pieces)


def test_stream_never_splits_a_character(tiny_model, tok):
    # a hook that forces the two tokens of one emoji, so the first token alone is half a character
    ids = tok.encode("🙂")
    assert len(ids) == 2

    def force(prefix, logits):
        import torch

        n = prefix.shape[1] - 1  # prompt is one token
        allowed = ids[n % 2]
        return logits.masked_fill(torch.arange(logits.shape[-1]) != allowed, float("-inf"))

    pieces = [e.text for e in stream(tiny_model, tok, "", max_new_tokens=6, logits_hooks=[force], seed=0)]
    assert pieces == ["", "🙂"] * 3  # the first token of each emoji releases no text


def test_complete_batches_and_unconditional(tiny_model, tok):
    out = complete(tiny_model, tok, ["First prompt", "", "Third"], max_new_tokens=5, num_samples=2, seed=0)
    assert [c.prompt for c in out] == ["First prompt"] * 2 + [""] * 2 + ["Third"] * 2
    assert all(c.finish_reason in ("length", "stop_token") for c in out)


def test_stream_refuses_many_samples(tiny_model, tok):
    with pytest.raises(GenerationError, match="one sample"):
        list(stream(tiny_model, tok, "x", num_samples=2))
