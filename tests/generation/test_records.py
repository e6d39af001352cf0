"""JSONL records of completions: the keys `gpt2kit generate --output` writes."""

from __future__ import annotations

import json

from gpt2kit import Tokenizer, complete
from gpt2kit.generation import GenerationSettings
from gpt2kit.generation.records import completion_records, write_jsonl


def test_records_gain_token_counts_and_logprobs_when_asked(tiny_model, tmp_path):
    tok = Tokenizer.from_pretrained()
    for logprobs, keys in ((None, set()), (0, {"logprobs"}), (3, {"logprobs", "top_logprobs"})):
        settings = GenerationSettings(max_new_tokens=4, temperature=0, logprobs=logprobs)
        completions = complete(tiny_model, tok, ["Hello", ""], **vars(settings))
        records = completion_records(completions, settings)
        assert set(records[0]) == {"prompt", "text", "token_ids", "finish_reason", "prompt_tokens",
                                   "completion_tokens", "settings"} | keys
        assert [r["prompt_tokens"] for r in records] == [len(tok.encode("Hello")), 1]
        path = tmp_path / "out" / f"{logprobs}.jsonl"
        write_jsonl(path, records)
        assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == \
            json.loads(json.dumps(records))
    assert [len(t) for t in records[0]["top_logprobs"]] == [3] * records[0]["completion_tokens"]
