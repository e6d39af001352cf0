"""`gpt2kit prepare`: shards hold tiktoken's ids of every document, resume where a kill left them,
and train as the text itself does."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import numpy as np
import pytest

from gpt2kit.data import prepare as prepare_module
from gpt2kit.data.dataset import WindowSampler, load_splits
from gpt2kit.data.prepare import prepare
from gpt2kit.data.shards import MANIFEST, open_shards
from gpt2kit.data.tokens import open_tokens
from gpt2kit.errors import DataError
from gpt2kit.tokenizer import Tokenizer
from gpt2kit.training import TrainConfig, finetune
from helpers import run_cli

FIXTURES = Path(__file__).parents[1] / "fixtures"
EOT = 50256


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[str]]:
    """A folder of two plain-text files and a .jsonl of short records (one empty), and its
    documents in reading order."""
    text = lzma.decompress((FIXTURES / "kjv.txt.xz").read_bytes()).decode().removeprefix("\ufeff")[:2_000_000]
    root = tmp_path_factory.mktemp("corpus") / "src"
    root.mkdir()
    half = len(text) // 2
    (root / "a.txt").write_text(text[:half])
    (root / "b.txt").write_text(text[half:])
    records = ["In the beginning", "", "and the earth was without form, and void", "\u00e9t\u00e9 \u2014 \U0001f600"]
    (root / "c.jsonl").write_text("".join(json.dumps({"text": r}) + "\n" for r in records))
    return root, [text[:half], text[half:], *records]


def reference_ids(encoding, documents: list[str]) -> np.ndarray:
    """tiktoken's ids of each document with text, each followed by <|endoftext|>."""
    return np.asarray([i for doc in documents if doc for i in [*encoding.encode_ordinary(doc), EOT]])


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "shards"
    result = run_cli("prepare", "--data", str(corpus[0]), "--out", str(out), "--workers", "2",
                     "--shard-tokens", "100000")
    assert result.returncode == 0, result.stderr
    assert "tokens of 5 documents in 6 shards" in result.stdout, result.stdout  # 531,000 tokens
    return out


def test_shards_hold_tiktokens_ids_of_every_document(prepared, corpus, reference_encoding):
    shards = sorted(prepared.glob("shard-*.tokens"))
    assert [len(open_tokens(s)) for s in shards] == [100_000] * 5 + [len(open_tokens(shards[-1]))]
    got = np.concatenate([open_tokens(s) for s in shards])
    np.testing.assert_array_equal(got, reference_ids(reference_encoding, corpus[1]))


def test_a_killed_preparation_continues_where_it_stopped(prepared, corpus, tmp_path, monkeypatch):
    """The state a kill after shard 3 leaves (manifest of 3 shards, a half-written 4th): the rerun
    keeps the 3 and writes the rest identical to the uninterrupted 2-worker run, here with 1 worker."""
    out = tmp_path / "shards"
    out.mkdir()
    manifest = json.loads((prepared / MANIFEST).read_text())
    kept = manifest["shards"][:3]
    for shard in kept:
        (out / shard["name"]).write_bytes((prepared / shard["name"]).read_bytes())
    (out / "shard-000003.tokens").write_bytes(b"half written")
    (out / MANIFEST).write_text(json.dumps({**manifest, "shards": kept, "complete": False}))
    before = {shard["name"]: (out / shard["name"]).stat().st_mtime_ns for shard in kept}
    result = prepare(corpus[0], out, workers=1, shard_tokens=100_000, progress=False)
    assert result.new_tokens == result.tokens - 300_000 and result.shards == 6
    assert {name: (out / name).stat().st_mtime_ns for name in before} == before
    for name in sorted(p.name for p in prepared.glob("shard-*.tokens")):
        assert (out / name).read_bytes() == (prepared / name).read_bytes(), name
    assert prepare(corpus[0], out, workers=1, shard_tokens=100_000, progress=False).new_tokens == 0  # finished
    with pytest.raises(DataError, match="holds shards of another source or other options"):
        prepare(corpus[0], out, workers=1, shard_tokens=50_000, progress=False)


def test_windows_of_shards_are_the_windows_of_the_text(prepared, corpus, reference_encoding):
    """WindowSampler over the shards (windows spanning two shards included) draws the windows it
    draws over the same ids in one array."""
    ids = reference_ids(reference_encoding, corpus[1]).astype(np.uint16)
    shards = open_shards(prepared)
    assert len(shards) == len(ids)
    for lo, hi in ((0, 5), (99_990, 100_010), (199_000, 401_000), (len(ids) - 3, len(ids))):
        np.testing.assert_array_equal(shards[lo:hi], ids[lo:hi])
    a, b = WindowSampler(shards, 1024, 64, seed=3), WindowSampler(ids, 1024, 64, seed=3)
    for _ in range(3):
        x, y = a.next_batch(), b.next_batch()
        assert (x.input_ids == y.input_ids).all() and (x.labels == y.labels).all()
    splits = load_splits(prepared, Tokenizer.from_pretrained(), seq_len=64, val_fraction=0.1)
    cut = int(len(ids) * 0.9)
    np.testing.assert_array_equal(splits.val[0:len(splits.val)], ids[cut:])


def test_finetune_trains_from_a_shard_folder(prepared, tmp_path):
    result = finetune(TrainConfig(data=prepared, out=tmp_path / "run", from_scratch="tiny", seq_len=32, batch_size=2,
                                  max_steps=2, val_fraction=0.01, eval_batches=1, progress=False))
    assert result.steps == 2 and result.val_loss is not None


def test_missing_or_unfinished_shards_are_refused(prepared, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in prepared.iterdir():
        if f.name != "shard-000002.tokens":
            (broken / f.name).write_bytes(f.read_bytes())
    with pytest.raises(DataError, match=r"shard-000002.tokens is missing \(the manifest lists 6 shards\)"):
        open_shards(broken)
    manifest = json.loads((prepared / MANIFEST).read_text())
    (broken / MANIFEST).write_text(json.dumps({**manifest, "complete": False}))
    with pytest.raises(DataError, match="the preparation is not finished"):
        open_shards(broken)


def test_small_work_items_on_two_workers_give_the_same_ids(corpus, tmp_path, monkeypatch, reference_encoding):
    """Many work items per file, tokenized out of order by 2 workers, written in order."""
    monkeypatch.setattr(prepare_module, "ITEM_CHARS", 100_000)
    result = prepare(corpus[0], tmp_path / "one", workers=2, shard_tokens=10**9, progress=False)
    assert result.shards == 1 and result.documents == 5
    got = open_tokens(tmp_path / "one" / "shard-000000.tokens")
    np.testing.assert_array_equal(got, reference_ids(reference_encoding, corpus[1]))
