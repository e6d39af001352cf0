"""Completions as JSON records, one per line: what `gpt2kit generate --output` writes."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpt2kit.atomic import atomic_write
from gpt2kit.generation.settings import GenerationSettings
from gpt2kit.generation.text import Completion


def completion_records(completions: Sequence[Completion], settings: GenerationSettings) -> list[dict[str, Any]]:
    """One dict per completion. `logprobs` (one per token id) is there when settings.logprobs
    is set, and `top_logprobs` (per token, {token id: logprob}) when it is above 0; JSON
    writes the ids as strings."""
    recorded = settings.to_dict()
    records = []
    for c in completions:
        record: dict[str, Any] = {"prompt": c.prompt, "text": c.text, "token_ids": c.token_ids,
                                  "finish_reason": c.finish_reason, "prompt_tokens": c.prompt_tokens,
                                  "completion_tokens": c.completion_tokens}
        if settings.logprobs is not None:
            record["logprobs"] = c.logprobs
        if settings.logprobs:
            record["top_logprobs"] = c.top_logprobs
        record["settings"] = recorded
        records.append(record)
    return records


def write_jsonl(path: str | Path, records: Sequence[dict[str, Any]]) -> None:
    """One JSON object per line, to stdout for "-"; a file is replaced atomically, so it is never
    half-written."""
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
    if str(path) == "-":
        sys.stdout.writelines(lines)
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "".join(lines))
