"""The tokenizer against tiktoken's own GPT-2 encoding and transformers' GPT-2 tokenizers."""

from __future__ import annotations

import json

import pytest
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt2kit import Tokenizer
from gpt2kit.errors import TokenizerError
from gpt2kit.tokenizer.bpe import DATA_DIR

ADVERSARIAL = [
    "",
    " ",
    "Hello, world!",
    "naïve café résumé — “quotes” ‘single’ «guillemets»",
    "👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 emoji ZWJ sequences 🤖",
    "日本語のテキスト、中文文本，한국어 텍스트",
    "e\u0301 a\u0308 o\u0302\u0323 Z\u0351\u0361\u0334a\u0353l\u0332g\u0341o combining marks",
    "   leading spaces\t\ttabs\n\n\nnewlines   \r\n  trailing   ",
    "\u00a0\u2003\u3000 unusual spaces \u200b zero width",
    "I'm you're he's we've they'll I'd don't CAN'T O'Neil 'quoted'",
    "a" * 5000,
    "ab " * 2000,
    "🙂" * 500,
    "\n" * 300 + " " * 300,
    "1234567890 3.14159 1e-10 0x1F $100,000.00 50% #hashtag @user",
    "def f(x):\n    return x ** 2  # comment\n",
    "<|endoftext|> is just text here <|endoftext",
    "Ελληνικά Русский עברית العربية हिन्दी ไทย",
    "\x00\x01\x7f control \x1b[31m bytes",
    "mixed😀text中文and spaces  and\ttabs",
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_pretrained()


@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_text_matches_tiktoken_and_transformers(tok, reference_encoding, text):
    ids = tok.encode(text)
    assert ids == reference_encoding.encode_ordinary(text)
    # a port of OpenAI's encoder.py (which, like gpt2kit, reads "<|endoftext|>" in text as text)
    slow = transformers.GPT2Tokenizer(str(DATA_DIR / "encoder.json"), str(DATA_DIR / "vocab.bpe"),
                                      split_special_tokens=True)
    assert ids == slow.encode(text)
    assert tok.decode(ids) == text


def test_lone_surrogates_match_tiktoken(tok, reference_encoding):
    text = "before \ud800 middle \udfff after \ud83d"
    assert tok.encode(text) == reference_encoding.encode_ordinary(text)
    assert tok.decode(tok.encode(text)) == "before \ufffd middle \ufffd after \ufffd"


def test_kjv_matches_transformers_fast_tokenizer(tok, kjv_text):
    fast = transformers.GPT2TokenizerFast(str(DATA_DIR / "encoder.json"), str(DATA_DIR / "vocab.bpe"))
    sample = kjv_text[:400_000]
    assert tok.encode(sample) == fast(sample)["input_ids"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_round_trip(text):
    tok = Tokenizer.from_pretrained()
    assert tok.decode(tok.encode(text)) == text


def test_endoftext_only_when_allowed(tok):
    text = "a<|endoftext|>b"
    assert 50256 not in tok.encode(text)
    assert tok.encode(text, allow_special=True) == [64, 50256, 65]
    assert tok.decode([50256]) == "<|endoftext|>"


def test_batch_encode(tok):
    texts = ["one", "two words", "<|endoftext|>"]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]
    assert tok.encode_batch(texts, allow_special=True)[2] == [50256]


def test_invalid_bytes_are_replaced(tok):
    # token 447 is the bytes E2 80: the first two of a three-byte character
    assert tok.token_bytes(447) == b"\xe2\x80"
    assert tok.decode([447, 64]) == "\ufffda"


def test_incremental_decoder_never_splits_a_character(tok):
    text = "日本語 👍🏽 👨‍👩‍👧‍👦 naïve"
    ids = tok.encode(text)
    assert len(ids) > len(text.split())  # several characters span more than one token
    decoder = tok.incremental_decoder()
    pieces = [decoder.add(i) for i in ids] + [decoder.flush()]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    assert "" in pieces  # some tokens ended mid-character and were held back


def test_incremental_decoder_flushes_an_incomplete_tail(tok):
    decoder = tok.incremental_decoder()
    assert decoder.add(447) == ""
    assert decoder.flush() == "\ufffd"


def test_vocab_json_and_merges_txt(tmp_path, tok):
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "vocab.json").read_bytes() == (DATA_DIR / "encoder.json").read_bytes()
    assert (tmp_path / "merges.txt").read_bytes() == (DATA_DIR / "vocab.bpe").read_bytes()
    again = Tokenizer.from_pretrained(tmp_path)
    assert again.encode(ADVERSARIAL[4]) == tok.encode(ADVERSARIAL[4])


def test_out_of_range_id(tok):
    with pytest.raises(TokenizerError, match="outside the vocabulary"):
        tok.decode([50257])


def test_missing_files(tmp_path):
    with pytest.raises(TokenizerError, match="no tokenizer files"):
        Tokenizer.from_pretrained(tmp_path)
    with pytest.raises(TokenizerError, match="not found"):
        Tokenizer.from_pretrained(tmp_path / "nope")


def test_malformed_files(tmp_path):
    (tmp_path / "vocab.json").write_text("{broken")
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\n")
    with pytest.raises(TokenizerError, match="malformed vocabulary JSON"):
        Tokenizer(tmp_path / "vocab.json", tmp_path / "merges.txt")
    (tmp_path / "vocab.json").write_text(json.dumps({"a": 0}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\nonly-one-token\n")
    with pytest.raises(TokenizerError, match="malformed merge line"):
        Tokenizer(tmp_path / "vocab.json", tmp_path / "merges.txt")
