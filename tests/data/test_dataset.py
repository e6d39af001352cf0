"""Files -> token cache -> windows."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest
import torch

from gpt2kit import Tokenizer
from gpt2kit.data import tokens
from gpt2kit.data.dataset import WindowSampler, eval_windows, load_splits, tokenize_to_cache
from gpt2kit.data.tokens import open_tokens, read_header, write_tokens
from gpt2kit.errors import DataError


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_pretrained()


def test_text_jsonl_csv_and_folders(tmp_path, tok):
    (tmp_path / "a.txt").write_text("First document.")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "Second."}) + "\n\n" + json.dumps({"text": "Third."}) + "\n")
    (tmp_path / "c.csv").write_text('id,text\n1,"Fourth, with a comma."\n')
    (tmp_path / ".hidden").write_text("never read")
    tokens = open_tokens(tokenize_to_cache(tmp_path, tok, cache_dir=tmp_path / "cache", progress=False))
    eot = tok.eot_id
    expected = []
    for doc in ("First document.", "Second.", "Third.", "Fourth, with a comma."):
        expected += [*tok.encode(doc), eot]
    assert tokens.tolist() == expected


def test_cache_is_reused_until_the_source_changes(tmp_path, tok):
    src = tmp_path / "t.txt"
    src.write_text("one two three " * 50)
    first = tokenize_to_cache(src, tok, cache_dir=tmp_path / "cache", progress=False)
    stamp = first.stat().st_mtime_ns
    assert tokenize_to_cache(src, tok, cache_dir=tmp_path / "cache", progress=False) == first
    assert first.stat().st_mtime_ns == stamp  # not rewritten
    src.write_text("four five six " * 50)
    os.utime(src, ns=(stamp + 10**9, stamp + 10**9))
    second = tokenize_to_cache(src, tok, cache_dir=tmp_path / "cache", progress=False)
    assert second != first
    assert open_tokens(second).tolist()[:3] == tok.encode("four five six")[:3]


def test_token_file_header_and_direct_use(tmp_path, tok):
    path = tmp_path / "x.tokens"
    assert write_tokens(path, [np.arange(10), np.arange(5)], b"fp") == 15
    assert read_header(path)[0] == 15
    assert tokenize_to_cache(path, tok) == path  # a token file is used as it is
    data = path.read_bytes()
    path.write_bytes(data[:-2])
    with pytest.raises(DataError, match="truncated token file"):
        open_tokens(path)


def test_splits_and_windows(tmp_path, tok):
    src = tmp_path / "t.txt"
    src.write_text(" ".join(f"word{i}" for i in range(2000)))
    splits = load_splits(src, tok, seq_len=32, val_fraction=0.2, cache_dir=tmp_path / "c", progress=False)
    assert len(splits.val) > 32 and abs(len(splits.train) / (len(splits.train) + len(splits.val)) - 0.8) < 0.01
    sampler = WindowSampler(splits.train, 32, 4, seed=0)
    batch = sampler.next_batch()
    x, y = batch.input_ids, batch.labels
    assert x.shape == y.shape == (4, 32) and torch.equal(x[:, 1:], y[:, :-1]) and batch.attention_mask is None
    state = sampler.state_dict()
    after = sampler.next_batch()
    sampler.load_state_dict(state)
    again = sampler.next_batch()
    assert torch.equal(again.input_ids, after.input_ids) and torch.equal(again.labels, after.labels)
    batches = list(eval_windows(splits.val, 32, 2, max_batches=2))
    assert len(batches) == 2 and batches[0].input_ids.shape == (2, 32)


@pytest.mark.parametrize(
    "content,message",
    [(b"", "no text to train on"), (b"\x00\x01\x02binary", "binary"), (b"caf\xe9 au lait", "not UTF-8")],
)
def test_bad_files(tmp_path, tok, content, message):
    src = tmp_path / "bad.txt"
    src.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_splits(src, tok, seq_len=8, cache_dir=tmp_path / "c", progress=False)


def test_replace_errors_and_short_text(tmp_path, tok):
    src = tmp_path / "latin1.txt"
    src.write_bytes(b"caf\xe9 au lait " * 20)
    splits = load_splits(src, tok, seq_len=8, errors="replace", cache_dir=tmp_path / "c", progress=False)
    assert tok.decode(splits.train[:4].tolist()).startswith("caf\ufffd")
    with pytest.raises(DataError, match="fewer than one window"):
        load_splits(src, tok, seq_len=1000, errors="replace", cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(DataError, match="no such file"):
        load_splits(tmp_path / "missing.txt", tok, seq_len=8, cache_dir=tmp_path / "c", progress=False)


def test_long_csv_fields_bom_and_out_of_vocabulary_tokens(tmp_path, tok):
    (tmp_path / "long.csv").write_text("\ufefftext\n\"" + "word " * 40000 + "\"\n", encoding="utf-8")
    tokens = open_tokens(tokenize_to_cache(tmp_path / "long.csv", tok, cache_dir=tmp_path / "c", progress=False))
    assert len(tokens) > 40000
    bad = tmp_path / "bad.tokens"
    write_tokens(bad, [np.array([1, 2, 60000] * 20)])
    with pytest.raises(DataError, match="outside the vocabulary"):
        load_splits(bad, tok, seq_len=8)


def test_paths_may_be_str(tmp_path, tok):
    (tmp_path / "a.txt").write_text("Hello world. " * 50)
    (tmp_path / "b.txt").write_text("Another text here. " * 50)
    splits = load_splits(str(tmp_path / "a.txt"), tok, seq_len=8, val_path=str(tmp_path / "b.txt"),
                         cache_dir=str(tmp_path / "cache"), progress=False)
    assert len(splits.train) > 8 and len(splits.val) > 8
    assert any((tmp_path / "cache").iterdir())


def test_a_token_file_that_cannot_be_written_is_named_not_its_temporary_file(tmp_path, monkeypatch):
    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tokens.os, "fsync", full_disk)
    with pytest.raises(DataError) as err:
        write_tokens(tmp_path / "cache" / "t.tokens", [np.arange(10)])
    assert str(err.value).startswith(f"{tmp_path / 'cache' / 't.tokens'}: could not write the token file "
                                     "(No space left on device)")
    assert ".tmp" not in str(err.value) and not list((tmp_path / "cache").iterdir())
