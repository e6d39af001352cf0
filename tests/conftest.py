"""Shared fixtures: tiny random models, the reference implementations, and the KJV text."""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
from pathlib import Path

import pytest
import torch

from gpt2kit import GPT2
from helpers import random_model

FIXTURES = Path(__file__).parent / "fixtures"
VOCAB_DIR = Path(__file__).parents[1] / "src" / "gpt2kit" / "tokenizer" / "data"
TIKTOKEN_URLS = {
    "vocab.bpe": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "encoder.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
}


def share_the_cores() -> None:
    """Under pytest-xdist, each worker gets its share of the cores (one thread each for `make test`'s
    two workers on two cores). torch's default, a thread per core in every worker, oversubscribes the
    cores: OpenMP threads of one process wait at barriers for threads the others have descheduled, and
    the small ops of tiny models ran 3-5 times slower, in CPU time too. OMP_NUM_THREADS carries the
    share to the CLI processes the tests start; a value the user set is kept."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, cores // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


share_the_cores()


@pytest.fixture
def tiny_model() -> GPT2:
    return random_model()


@pytest.fixture(scope="session")
def reference_encoding(tmp_path_factory):
    """tiktoken's own `gpt2` encoding, built by tiktoken's loader from the vocabulary files
    placed in its download cache (the files are byte-identical to the published ones, which
    tiktoken checks by sha256)."""
    import os

    import tiktoken
    import tiktoken.registry

    cache = tmp_path_factory.mktemp("tiktoken-cache")
    for name, url in TIKTOKEN_URLS.items():
        shutil.copyfile(VOCAB_DIR / name, cache / hashlib.sha1(url.encode()).hexdigest())
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        tiktoken.registry.ENCODINGS.pop("gpt2", None)
        return tiktoken.get_encoding("gpt2")
    finally:
        if old is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR")
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def kjv_text() -> str:
    return lzma.decompress((FIXTURES / "kjv.txt.xz").read_bytes()).decode("utf-8")
