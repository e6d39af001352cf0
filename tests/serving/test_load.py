"""A short load test (bench/serve_load.py's checks, no timing): 24 requests from 8 clients at once,
half streaming, 2 of the streams closed after a few chunks. Every other answer must be whole and
equal to the same request decoded alone in-process; the cut streams must leave the batch."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

from serving_helpers import API_KEY

BENCH = Path(__file__).parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


serve_load = _load("serve_load")


def test_concurrent_clients_get_whole_answers_equal_to_decoding_alone(server, shipped):
    # greedy only: a sampled draw can flip on logits that batching changes in their last bits (the
    # bench saw one sampled answer of 540 leave the in-process one)
    requests = serve_load.make_requests(24, streaming=0.5, disconnecting=2 / 24, distinct=6, lengths=(4, 8, 16),
                                         sampled=0, seed=3)
    assert sum(r.stream for r in requests) == 12 and sum(r.disconnect for r in requests) == 2
    assert len({r.max_tokens for r in requests}) == 4 and any(r.stop for r in requests)
    expected = serve_load.references(shipped, requests)

    outcomes, _ = asyncio.run(serve_load.run_load(server.url, requests, 8, api_key=API_KEY, model="test-model"))

    assert serve_load.check(outcomes, expected, shipped.tokenizer) == []
    assert [o.request.index for o in outcomes] == list(range(24))
    cut = [o for o in outcomes if o.disconnected]
    assert len(cut) == 2 and all(o.chunks == serve_load.CHUNKS_BEFORE_DISCONNECT for o in cut)
    health = asyncio.run(serve_load.settled(server.url))
    assert health["running_rows"] == 0 and health["queue_depth"] == 0  # the cut streams freed their rows


def test_a_wrong_answer_is_reported(server, shipped):
    """The checks can fail: a request whose answer differs from decoding alone, or that failed."""
    (r,) = serve_load.make_requests(1, streaming=0, disconnecting=0, distinct=2, lengths=(8,), seed=1)
    expected = serve_load.references(shipped, [r])
    (outcome,), _ = asyncio.run(serve_load.run_load(server.url, [r], 1, api_key=API_KEY, model="test-model"))
    assert serve_load.check([outcome], expected, shipped.tokenizer) == []
    outcome.text += "!"
    assert "in-process" in serve_load.check([outcome], expected, shipped.tokenizer)[0]
    (refused,), _ = asyncio.run(serve_load.run_load(server.url, [r], 1, api_key="wrong", model="test-model"))
    assert "failed (401)" in serve_load.check([refused], expected, shipped.tokenizer)[0]
