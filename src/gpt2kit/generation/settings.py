"""Generation settings, validated before any work is done."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gpt2kit.config import EOT_TOKEN_ID
from gpt2kit.errors import GenerationError


@dataclass
class GenerationSettings:
    max_new_tokens: int = 64
    temperature: float = 1.0  # 0 means greedy
    top_k: int = 0  # 0 means no top-k filtering
    top_p: float = 1.0  # 1 means no nucleus filtering
    num_samples: int = 1
    seed: int | None = None
    eos_token_id: int | None = EOT_TOKEN_ID  # None: never stop early

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 0:
            raise GenerationError(f"max-new-tokens must be an integer >= 0, got {self.max_new_tokens!r}")
        if self.temperature < 0:
            raise GenerationError(f"temperature must be >= 0 (0 means greedy), got {self.temperature}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise GenerationError(f"top-k must be an integer >= 0 (0 disables it), got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise GenerationError(f"top-p must be in (0, 1], got {self.top_p}")
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise GenerationError(f"num-samples must be an integer >= 1, got {self.num_samples!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict:
        return asdict(self)


def settings_from(kwargs: dict) -> GenerationSettings:
    """GenerationSettings from keyword arguments, refusing unknown names with one line."""
    known = set(GenerationSettings.__dataclass_fields__)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise GenerationError(f"unknown generation setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return GenerationSettings(**kwargs)
