"""Streaming sources: a document read in pieces tokenizes exactly as the whole text."""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt2kit import Tokenizer
from gpt2kit.data import sources
from gpt2kit.data.dataset import tokenize_to_cache
from gpt2kit.data.sources import lines, safe_cut, text_pieces
from gpt2kit.data.tokens import open_tokens
from gpt2kit.errors import DataError

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_pretrained()


def encode_in_pieces(tok: Tokenizer, path: Path, piece: int) -> list[int]:
    return [i for p in text_pieces(path, "strict", piece) for i in tok.encode(p)]


def test_the_bible_in_small_pieces_gives_the_ids_of_the_whole(tok, tmp_path):
    text = lzma.decompress((FIXTURES / "kjv.txt.xz").read_bytes()).decode()[:400_000]
    path = tmp_path / "kjv.txt"
    path.write_text(text, encoding="utf-8")
    pieces = list(text_pieces(path, "strict", 1000))
    assert len(pieces) > 300 and "".join(pieces) == text
    assert encode_in_pieces(tok, path, 1000) == tok.encode(text)


# spaces, runs of spaces, newlines, tabs, letters, digits, punctuation and contractions
ALPHABET = st.sampled_from([" ", "  ", "\n", "\n\n", "\t", "a", "Zé", "7", "42", ".", "'s", "'ll", "—", "日本", "!?",
                            "\r\n"])


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=80), st.integers(1, 12))
def test_any_text_in_pieces_gives_the_ids_of_the_whole(tok, tmp_path_factory, parts, piece):
    text = "".join(parts)
    path = tmp_path_factory.mktemp("t") / "t.txt"
    path.write_bytes(text.encode())
    assert "".join(text_pieces(path, "strict", piece)) == text
    assert encode_in_pieces(tok, path, piece) == tok.encode(text)


def test_safe_cut_only_between_non_spaces():
    assert safe_cut("ab cd ef") == 5
    assert safe_cut("ab  cd") == 0  # a run of spaces is not cut
    assert safe_cut("abc") == 0
    assert safe_cut("a b\n c") == 1
    assert safe_cut("ab\ncd") == 3  # after a single newline between non-spaces
    assert safe_cut("ab\n\ncd") == safe_cut("ab\r\ncd") == 0


def test_text_without_spaces_is_cut_at_newlines_in_linear_time(tok, tmp_path):
    path = tmp_path / "cjk.txt"
    text = "日本語の文章です。\n" * 20_000 + "一行" * 50_000  # ends in one long line with no place to cut
    path.write_text(text)
    pieces = list(text_pieces(path, "strict", 10_000))
    assert len(pieces) > 15 and "".join(pieces) == text
    assert [i for p in pieces for i in tok.encode(p)] == tok.encode(text)


def test_jsonl_with_any_line_ends(tmp_path):
    from gpt2kit.data.sources import iter_documents

    for end in ("\n", "\r\n", "\r"):
        path = tmp_path / "d.jsonl"
        path.write_bytes(end.join(['{"text": "one\u2028still one"}', '{"text": "two"}', "", '{"x": 1}']).encode())
        with pytest.raises(DataError, match=r"d.jsonl:4: no 'text' field"):  # records counted right
            list(iter_documents(path))
        path.write_bytes(end.join(['{"text": "one\u2028still one"}', '{"text": "two"}']).encode() + end.encode())
        assert [list(d) for d in iter_documents(path)] == [["one\u2028still one"], ["two"]]


def test_errors_give_the_offset_in_the_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"\xef\xbb\xbf" + b"line\n" * 3000 + b"caf\xe9\n")
    with pytest.raises(DataError, match=r"invalid byte at offset 15006\b"):
        list(lines(path, "strict"))
    assert list(lines(path, "replace"))[-1] == "caf\ufffd\n"
    assert list(lines(path, "replace"))[0] == "line\n"  # the byte-order mark is dropped


def test_a_large_file_is_tokenized_without_reading_it_whole(tok, tmp_path, monkeypatch):
    """Pieces stay near PIECE characters: what is held at a time does not grow with the file."""
    path = tmp_path / "big.txt"
    path.write_text("In the beginning God created the heaven and the earth.\n" * 20_000)  # 1.1 MB
    monkeypatch.setattr(sources, "PIECE", 10_000)
    sizes = [len(p) for p in text_pieces(path, "strict")]
    assert len(sizes) > 100 and max(sizes) < 10_100


def test_a_linked_file_or_folder_is_read_once(tmp_path, tok):
    data = tmp_path / "data"
    (data / "books").mkdir(parents=True)
    (data / "books" / "a.txt").write_text("In the beginning")
    (data / "b.txt").write_text("And the earth")
    (data / "a-again.txt").symlink_to(data / "books" / "a.txt")  # sorts before books/a.txt: still the one skipped
    (data / "books" / "library").symlink_to(data)  # a loop back to the top
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "c.txt").write_text("was without form")
    (data / "more").symlink_to(outside)  # a folder not otherwise read: followed
    files, skipped = sources.scan(data)
    assert files == [data / "b.txt", data / "books" / "a.txt", data / "more" / "c.txt"]
    assert skipped == [data / "a-again.txt", data / "books" / "library"]
    ids = open_tokens(tokenize_to_cache(data, tok, cache_dir=tmp_path / "cache", progress=False)).tolist()
    assert ids.count(tok.eot_id) == 3
