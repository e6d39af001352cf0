"""When a row stops: end-of-text or a stop token, a stop string, or its length budget.

Stop strings are matched on bytes, so a string split across tokens (or inside one
token, or across a multi-byte character) is found the moment its last byte arrives.
"""

from __future__ import annotations

from collections.abc import Callable

from gpt2kit.generation.settings import GenerationSettings


class StopCriteria:
    def __init__(self, settings: GenerationSettings, budgets: list[int],
                 token_bytes: Callable[[int], bytes] | None) -> None:
        self.stop_ids = settings.stop_ids()
        self.strings = [s.encode("utf-8") for s in settings.stop]
        self.keep = max((len(s) for s in self.strings), default=1) - 1
        self.tails = [b""] * len(budgets)
        self.budgets = budgets
        self.min_new = settings.min_new_tokens
        self.token_bytes = token_bytes

    def check(self, row: int, token: int, generated: int) -> str | None:
        """Why `row` stops after its `generated`-th token `token`, or None to go on."""
        allowed = generated > self.min_new
        if allowed and token in self.stop_ids:
            return "stop_token"
        if self.strings and self._string_found(row, token) and allowed:
            return "stop_string"
        return "length" if generated >= self.budgets[row] else None

    def _string_found(self, row: int, token: int) -> bool:
        tail = self.tails[row]
        window = tail + self.token_bytes(token)
        self.tails[row] = window[-self.keep:] if self.keep else b""
        # only matches that end in this token's bytes: older ones were seen (and let pass) before
        return any(window.find(s, max(0, len(tail) - len(s) + 1)) >= 0 for s in self.strings)


def cut_at_stop(text: str, stops: tuple[str, ...] | list[str]) -> str:
    """`text` up to the stop string that ended it: the last one (earlier ones came before
    min_new_tokens allowed stopping)."""
    cut = max((text.rfind(s) for s in stops), default=-1)
    return text if cut < 0 else text[:cut]
