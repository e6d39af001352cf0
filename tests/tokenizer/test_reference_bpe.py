"""gpt2kit's tokenizer against an independent pure-Python GPT-2 encoder (tests/tokenizer/reference_bpe.py).

test_bpe.py compares with tiktoken, which is also gpt2kit's engine; here the reference shares
nothing with it but the two published vocabulary files.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpt2kit import Tokenizer
from gpt2kit.tokenizer.bpe import DATA_DIR
from tokenizer.reference_bpe import ReferenceBPE, byte_alphabet


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_pretrained()


@pytest.fixture(scope="module")
def ref() -> ReferenceBPE:
    return ReferenceBPE(DATA_DIR / "encoder.json", DATA_DIR / "vocab.bpe")


# ---- the reference itself, anchored to the published vocabulary ------------------------------

KNOWN_IDS = {
    "Hello world": [15496, 995],
    " the": [262],
    "The": [464],
    " The": [383],
    "\n": [198],
    "\n\n": [628],
    " ": [220],
    "!": [0],
}


@pytest.mark.parametrize("text", list(KNOWN_IDS), ids=[repr(t) for t in KNOWN_IDS])
def test_reference_gives_published_ids(ref, text):
    assert ref.encode(text) == KNOWN_IDS[text]
    assert ref.decode(KNOWN_IDS[text]) == text


def test_byte_alphabet():
    alphabet = byte_alphabet()
    assert len(set(alphabet)) == 256
    assert alphabet[ord("A")] == "A" and alphabet[0xE9] == "é"
    assert alphabet[0] == chr(256) and alphabet[ord(" ")] == "Ġ" and alphabet[ord("\n")] == "Ċ"
    assert alphabet[0xAD] == chr(256 + 67)  # the soft hyphen is the last of the 68 shifted bytes


def test_reference_vocabulary_layout(ref):
    # 256 byte symbols, then one token per merge in merge order, then <|endoftext|>
    assert len(ref.id_of) == 50257 and len(ref.rank) == 50000
    assert [ref.id_of[c] for c in sorted(byte_alphabet(), key=ref.id_of.get)] == list(range(256))
    for (left, right), rank in ref.rank.items():
        assert ref.id_of[left + right] == 256 + rank
    assert ref.id_of["<|endoftext|>"] == 50256


def test_reference_pretokenizer(ref):
    assert ref.pretokenize("I'm DON'T 's  \n x\r\n") == [
        "I", "'m", " DON", "'", "T", " '", "s", "  \n", " x", "\r\n"]
    assert ref.pretokenize("a   b") == ["a", "  ", " b"]
    assert ref.pretokenize("x1234abc ..!") == ["x", "1234", "abc", " ..!"]


# ---- the whole KJV text ----------------------------------------------------------------------


def test_whole_kjv_matches_reference(tok, ref, reference_encoding, kjv_text):
    assert len(kjv_text) > 4_000_000
    ids = tok.encode(kjv_text)
    assert len(ids) > 1_000_000
    assert ids == ref.encode(kjv_text)
    assert ids == reference_encoding.encode_ordinary(kjv_text)  # tiktoken's own gpt2 encoding too
    assert ref.decode(ids) == kjv_text and tok.decode(ids) == kjv_text


def test_kjv_lines_match_reference(tok, ref, kjv_text):
    lines = kjv_text.splitlines(keepends=True)[::41]
    assert len(lines) > 500
    assert tok.encode_batch(lines) == [ref.encode(line) for line in lines]


# ---- every vocabulary token's own text -------------------------------------------------------


def test_every_vocabulary_token_text_matches_reference(tok, ref):
    checked = 0
    for token_id in range(50257):
        try:
            text = ref.decode_bytes([token_id]).decode("utf-8")
        except UnicodeDecodeError:
            continue  # a piece of a multi-byte character
        assert tok.encode(text) == ref.encode(text), (token_id, text)
        checked += 1
    assert checked > 49_000


# ---- adversarial strings ---------------------------------------------------------------------

ADVERSARIAL = [
    "DON'T WON'T I'M YOU'RE THEY'LL WE'VE HE'D IT'S",
    "Don'T dOn't 'S 'LL 'Ll 'lL",
    "'s at the start, 't 're 've 'm 'll 'd",
    "'sss 'tt 'reve 'lll ''s '''t 's's",
    "it’s don’t (typographic apostrophes)",
    "spaces before newline     \nand    \n\n   \n",
    "windows\r\nline\r\n\r\nends \r\n \r\n",
    "\ttabs\t\tand\t \tmixed \t\n\t",
    "non\u00a0breaking\u00a0\u00a0spaces \u00a0x\u202fy\u2007z",
    "\u2028line\u2029para\x85nel\x0bvt\x0cff\x1cfs\x1fus",
    "1" * 10_000,
    "12345678901234567890" * 500,
    " 3.14159265358979323846 -42 1,000,000 ½ ² Ⅻ ① ٣٤٥ ४५६",
    "a" * 10_000,
    " a" * 5_000,
    "!" * 10_000,
    " " * 10_000 + "x",
    "\n" * 10_000,
    "é" * 10_000,
    "中" * 10_000,
    "🙂" * 3_000,
    "e\u0301" * 3_000,
    "\u0301\u0301\u0301 marks without a base \u20dd",
    "<|endoftext|><|endoftext|>",
    "\x00\x01\x02\x7f\x80\x9f\xad\ufeff\ufffd\uffff\U0010ffff",
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_text_matches_reference(tok, ref, text):
    ids = tok.encode(text)
    assert ids == ref.encode(text)
    assert tok.decode(ids) == ref.decode(ids) == text


# ---- generated Unicode text ------------------------------------------------------------------

WHITESPACE = [" ", "  ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\u00a0", "\u1680",
              "\u2000", "\u2007", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u180e", "\u200b",
              "\ufeff"]
DIGITS = list("0123456789") + ["٣", "४", "৭", "๙", "１", "½", "²", "Ⅻ", "①", "𝟗"]
LETTERS = list("aZxQéßøÆİıΣσςЖжאשعربहिคไ中文日本語한국ひカ") + ["𝔄", "ǅ", "ʰ", "ª"]
MARKS = ["\u0301", "\u0308", "\u0323", "\u093f", "\u0e31", "\u20dd", "\u200d", "\ufe0f", "\U0001f3fd"]
EMOJI = ["🙂", "👍", "👨\u200d👩\u200d👧", "🇺🇸", "🏳️\u200d🌈", "❤️", "🤖"]
SYMBOLS = list("'’\"-.,!?;:$%&*()[]{}<>/\\|_~`^@#+=") + ["\x00", "\x7f", "\x9f", "\u00ad", "\ufffd", "\U000e0041"]
FRAGMENTS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'RE", "DON'T", "don't", "<|endoftext|>",
             " the", "Hello", "world", "\n\n"]

pieces = st.one_of(
    st.sampled_from(WHITESPACE + DIGITS + LETTERS + MARKS + EMOJI + SYMBOLS + FRAGMENTS),
    st.text(st.sampled_from(LETTERS + DIGITS), min_size=1, max_size=12),
)
built_text = st.lists(pieces, max_size=60).map("".join)
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
GENERATED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@GENERATED
@given(text=st.one_of(any_text, built_text))
def test_generated_text_matches_reference(tok, ref, text):
    ids = tok.encode(text)
    assert ids == ref.encode(text)
    assert tok.decode(ids) == text


@GENERATED
@given(text=built_text)
def test_generated_mixed_scripts_match_reference(tok, ref, text):
    assert tok.encode(text) == ref.encode(text)


@GENERATED
@given(ids=st.lists(st.integers(0, 50256), max_size=50))
def test_decoding_any_ids_matches_reference(tok, ref, ids):
    assert tok.decode_bytes(ids) == ref.decode_bytes(ids)
    assert tok.decode(ids) == ref.decode(ids)
