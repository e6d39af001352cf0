"""OpenAI's byte-level BPE, built offline from `encoder.json` + `vocab.bpe` (or `vocab.json` + `merges.txt`).

tiktoken is the engine. GPT-2 gives each merged token the id 256 + its merge rank,
so the encoder's ids *are* the merge priorities tiktoken wants, and encoding with
them reproduces the original encoder's ids exactly.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import tiktoken

from gpt2kit.config import EOT_TOKEN_ID
from gpt2kit.errors import TokenizerError
from gpt2kit.tokenizer.streaming import IncrementalDecoder

EOT = "<|endoftext|>"
DATA_DIR = Path(__file__).parent / "data"
# The pre-tokenizer of OpenAI's encoder.py, in tiktoken's spelling of it.
PAT_STR = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# Pairs of (vocabulary, merges) file names, in the order they are looked for.
FILE_PAIRS = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for every byte: printable bytes map to themselves,
    the other 68 to chr(256 + n) in increasing byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, n = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return table


def _mergeable_ranks(encoder: dict[str, int], merges: list[str], vocab_path: Path) -> dict[bytes, int]:
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    ranks: dict[bytes, int] = {}
    for token, idx in encoder.items():
        if token == EOT:
            continue
        try:
            ranks[bytes(byte_of[c] for c in token)] = idx
        except (KeyError, TypeError):
            raise TokenizerError(f"{vocab_path}: token {token!r} is not in GPT-2's byte-level alphabet") from None
    # tiktoken merges by the rank of the merged token; that equals the merge order only
    # when every merge's result has an id above those of the merges before it.
    last = 255
    for line in merges:
        left, _, right = line.partition(" ")
        idx = encoder.get(left + right)
        if idx is None:
            raise TokenizerError(f"{vocab_path}: merge {line!r} makes a token missing from the vocabulary")
        if idx <= last and idx >= 256:
            raise TokenizerError(f"{vocab_path}: ids do not follow the merge order, which GPT-2's BPE requires")
        last = max(last, idx)
    return ranks


class Tokenizer:
    """GPT-2's tokenizer: text <-> token ids, identical to OpenAI's encoder."""

    def __init__(self, vocab_file: str | Path, merges_file: str | Path) -> None:
        self.vocab_file, self.merges_file = Path(vocab_file), Path(merges_file)
        encoder = _read_vocab(self.vocab_file)
        merges = _read_merges(self.merges_file)
        ranks = _mergeable_ranks(encoder, merges, self.vocab_file)
        eot_id = encoder.get(EOT, EOT_TOKEN_ID)
        self._enc = tiktoken.Encoding(
            name=f"gpt2kit:{self.vocab_file}",
            pat_str=PAT_STR,
            mergeable_ranks=ranks,
            special_tokens={EOT: eot_id},
        )
        self.eot_id = eot_id
        self.vocab_size = self._enc.n_vocab

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> Tokenizer:
        """From a folder holding vocab.json + merges.txt (or encoder.json + vocab.bpe).
        With no path, GPT-2's vocabulary shipped with gpt2kit."""
        folder = Path(path) if path is not None else DATA_DIR
        if not folder.is_dir():
            raise TokenizerError(f"{folder}: tokenizer folder not found")
        for vocab, merges in FILE_PAIRS:
            if (folder / vocab).is_file() and (folder / merges).is_file():
                return _cached(str((folder / vocab).resolve()), str((folder / merges).resolve()))
        wanted = " or ".join(f"{v} + {m}" for v, m in FILE_PAIRS)
        raise TokenizerError(f"{folder}: no tokenizer files (looked for {wanted})")

    @classmethod
    def for_model(cls, path: str | Path) -> Tokenizer:
        """The tokenizer files stored with a model (folder or checkpoint file), or GPT-2's
        shipped vocabulary when it has none (MindSpore checkpoints, bare TF checkpoints)."""
        folder = Path(path)
        folder = folder if folder.is_dir() else folder.parent
        if any((folder / v).is_file() and (folder / m).is_file() for v, m in FILE_PAIRS):
            return cls.from_pretrained(folder)
        return cls.from_pretrained()

    # ---- text -> ids ----------------------------------------------------------------------

    def encode(self, text: str, *, allow_special: bool = False) -> list[int]:
        """Token ids of `text`. `<|endoftext|>` in the text becomes token 50256 only when
        allow_special is set; otherwise it is ordinary text, as in OpenAI's encoder."""
        if allow_special:
            return self._enc.encode(text, allowed_special={EOT})
        return self._enc.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str], *, allow_special: bool = False) -> list[list[int]]:
        if allow_special:
            return self._enc.encode_batch(list(texts), allowed_special={EOT})
        return self._enc.encode_ordinary_batch(list(texts))

    # ---- ids -> text ----------------------------------------------------------------------

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; bytes that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        ids = list(ids)
        self._check_ids(ids)
        return self._enc.decode_bytes(ids)

    def token_bytes(self, token_id: int) -> bytes:
        self._check_ids([token_id])
        return self._enc.decode_single_token_bytes(token_id)

    def incremental_decoder(self) -> IncrementalDecoder:
        """Turns a stream of ids into text pieces, never splitting a UTF-8 character."""
        return IncrementalDecoder(self.token_bytes)

    def _check_ids(self, ids: list[int]) -> None:
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise TokenizerError(f"token id {i} is outside the vocabulary (0..{self.vocab_size - 1})")

    # ---- files -----------------------------------------------------------------------------

    def save_pretrained(self, path: str | Path, *, model_max_length: int = 1024) -> None:
        """Write vocab.json, merges.txt and tokenizer_config.json (transformers reads them);
        model_max_length is the context of the model the files go with."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.vocab_file, path / "vocab.json")
        shutil.copyfile(self.merges_file, path / "merges.txt")
        config = {
            "tokenizer_class": "GPT2Tokenizer",
            "model_max_length": model_max_length,
            "add_prefix_space": False,
            "bos_token": EOT,
            "eos_token": EOT,
            "unk_token": EOT,
        }
        (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, vocab_file={str(self.vocab_file)!r})"


@lru_cache(maxsize=8)
def _cached(vocab_file: str, merges_file: str) -> Tokenizer:
    # Building the encoding takes ~0.5 s; a tokenizer is immutable, so share it.
    return Tokenizer(vocab_file, merges_file)


def _read_vocab(path: Path) -> dict[str, int]:
    if not path.is_file():
        raise TokenizerError(f"{path}: vocabulary file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TokenizerError(f"{path}: malformed vocabulary JSON ({err})") from None
    if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
        raise TokenizerError(f"{path}: expected a JSON object mapping token strings to integer ids")
    return data


def _read_merges(path: Path) -> list[str]:
    if not path.is_file():
        raise TokenizerError(f"{path}: merges file not found")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError:
        raise TokenizerError(f"{path}: merges file is not UTF-8 text") from None
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    merges = [line for line in lines if line]
    bad = next((m for m in merges if len(m.split(" ")) != 2), None)
    if bad is not None:
        raise TokenizerError(f"{path}: malformed merge line {bad!r} (expected two tokens separated by a space)")
    return merges
