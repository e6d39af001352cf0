"""An independent GPT-2 encoder for the tests: plain Python, no tiktoken.

Written from the description of OpenAI's format, so that gpt2kit's tokenizer (run by
tiktoken) has something to be compared with that does not share its engine:

1. the text is cut into pre-tokens by the regular expression below (contractions,
   letter runs, number runs and other-symbol runs, each with at most one leading space,
   and whitespace runs that leave their last space to the next word);
2. each pre-token's UTF-8 bytes are spelled in GPT-2's byte alphabet, one printable
   character per byte;
3. byte-pair merges from vocab.bpe are applied, the pair with the lowest rank (its line
   number) first, every occurrence of it at once, until no adjacent pair is in the list;
4. each resulting symbol is looked up in encoder.json.

Decoding maps ids back to symbols, symbols back to bytes, bytes to text.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import regex

PRETOKENIZER = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def byte_alphabet() -> list[str]:
    """The stand-in character of each byte value 0..255. The printable ones ('!'..'~',
    '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68 (controls, space, DEL, NBSP,
    soft hyphen, ...) take chr(256), chr(257), ... in increasing byte order."""
    printable = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    alphabet, shifted = [], 0
    for value in range(256):
        if value in printable:
            alphabet.append(chr(value))
        else:
            alphabet.append(chr(256 + shifted))
            shifted += 1
    assert shifted == 68
    return alphabet


class ReferenceBPE:
    """GPT-2's byte-level BPE, the slow and obvious way (with a per-pre-token cache)."""

    def __init__(self, encoder_json: str | Path, vocab_bpe: str | Path) -> None:
        self.id_of: dict[str, int] = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
        self.symbol_of: dict[int, str] = {i: s for s, i in self.id_of.items()}
        lines = Path(vocab_bpe).read_text(encoding="utf-8").split("\n")
        if not lines[0].startswith("#version"):
            raise ValueError(f"{vocab_bpe}: the first line should be the version header")
        self.rank: dict[tuple[str, str], int] = {}
        for line in lines[1:]:
            if line:
                left, right = line.split(" ")
                self.rank[(left, right)] = len(self.rank)
        self.alphabet = byte_alphabet()
        self.byte_of = {c: b for b, c in enumerate(self.alphabet)}
        self._cache: dict[str, list[int]] = {}

    def pretokenize(self, text: str) -> list[str]:
        return PRETOKENIZER.findall(text)

    def merge(self, word: str) -> list[str]:
        """The BPE symbols of one pre-token already spelled in the byte alphabet."""
        symbols = list(word)
        unranked = len(self.rank)
        while len(symbols) > 1:
            best = min(pairwise(symbols), key=lambda pair: self.rank.get(pair, unranked))
            if best not in self.rank:
                break
            left, right = best
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == left and symbols[i + 1] == right:
                    merged.append(left + right)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def encode_piece(self, piece: str) -> list[int]:
        ids = self._cache.get(piece)
        if ids is None:
            word = "".join(self.alphabet[b] for b in piece.encode("utf-8"))
            ids = [self.id_of[symbol] for symbol in self.merge(word)]
            if len(piece) <= 64:
                self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` ('<|endoftext|>' in it is ordinary text, as in OpenAI's encoder)."""
        ids: list[int] = []
        for piece in PRETOKENIZER.findall(text):
            ids.extend(self.encode_piece(piece))
        return ids

    def decode_bytes(self, ids: list[int]) -> bytes:
        return bytes(self.byte_of[c] for i in ids for c in self.symbol_of[i])

    def decode(self, ids: list[int]) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")
