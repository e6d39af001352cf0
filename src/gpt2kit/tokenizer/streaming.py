"""Ids -> text while streaming.

A GPT-2 token can end in the middle of a multi-byte UTF-8 character (emoji and CJK
are often split across two or three tokens), so the decoder holds incomplete bytes
back until the character is whole.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable


class IncrementalDecoder:
    def __init__(self, token_bytes: Callable[[int], bytes]) -> None:
        self._token_bytes = token_bytes
        # The codec keeps an incomplete trailing sequence for the next call and
        # replaces bytes that can never become valid.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token_id: int) -> str:
        """Text completed by this token ('' while a character is still incomplete)."""
        return self._utf8.decode(self._token_bytes(token_id))

    def flush(self) -> str:
        """Whatever is left at the end of the stream (an incomplete character becomes U+FFFD)."""
        return self._utf8.decode(b"", final=True)
