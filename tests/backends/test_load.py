"""`gpt2kit.load`: every kind of name to a ready model, its tokenizer and where it came from."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import gpt2kit
from gpt2kit import GPT2, LoadedModel, Tokenizer, devices
from gpt2kit.backends import UnknownBackendError, backend_names
from gpt2kit.weights.resolve import DEFAULT_MODEL
from helpers import random_model

FIXTURES = Path(__file__).parents[1] / "fixtures"
IDS = torch.tensor([[464, 3290, 318]])


@pytest.fixture(scope="module")
def shipped() -> LoadedModel:
    return gpt2kit.load()


def test_default_model_by_none_and_by_name(shipped):
    assert isinstance(shipped.model, GPT2) and isinstance(shipped.tokenizer, Tokenizer)
    assert (shipped.name, shipped.path, shipped.format, shipped.backend) == (None, DEFAULT_MODEL, "hf", "torch")
    assert shipped.dtype == torch.float32 and shipped.model.device == torch.device("cpu")
    assert "King James" in shipped.metadata["origin"] and not shipped.random_weights
    assert shipped.description() == f"model: {shipped.metadata['origin']}"
    named = gpt2kit.load("default")
    assert named.path == DEFAULT_MODEL and named.description().startswith("model: default — ")
    with torch.no_grad():
        torch.testing.assert_close(named.model(IDS), shipped.model(IDS), atol=0, rtol=0)


def test_provenance_is_not_pinned_on_the_model(shipped):
    for name in ("source", "source_format", "metadata"):
        assert not hasattr(shipped.model, name)
    assert not hasattr(GPT2.from_pretrained(DEFAULT_MODEL), "source")


def test_folder_with_random_weights_is_flagged(tmp_path):
    model = random_model()
    model.save_pretrained(tmp_path / "m", metadata={"origin": "a test", "random_init": True})
    loaded = gpt2kit.load(tmp_path / "m", dtype=torch.float32, device="cpu")
    assert loaded.name == str(tmp_path / "m") and loaded.random_weights
    notes = loaded.notes()
    assert notes[0] == f"model: {tmp_path / 'm'} — a test"
    assert len(notes) == 2 and "random, untrained weights" in notes[1]
    with torch.no_grad():  # packed for inference, and the same logits as the model saved
        torch.testing.assert_close(loaded.model(IDS), model(IDS))


@pytest.mark.parametrize("path, fmt", [(FIXTURES / "openai" / "tiny", "openai"),
                                       (FIXTURES / "mindspore" / "gpt2_tiny_fp32.ckpt", "mindspore")])
def test_framework_checkpoints(path, fmt):
    loaded = gpt2kit.load(path)
    assert (loaded.format, loaded.path, loaded.metadata) == (fmt, path, {})
    assert loaded.description() == f"model: {path}"
    assert loaded.tokenizer.encode("Hello") == Tokenizer.from_pretrained().encode("Hello")


def test_slow_dtype_is_among_the_notes(monkeypatch):
    monkeypatch.setattr(devices, "_fast_on_cpu", lambda dtype: False)
    loaded = gpt2kit.load(dtype=torch.bfloat16)
    assert loaded.dtype == torch.bfloat16 and loaded.model.dtype == torch.bfloat16
    warning, description = loaded.notes(fp32="--dtype fp32")
    assert "no bf16 matrix instructions" in warning and warning.endswith("use --dtype fp32 on this machine")
    assert description.startswith("model: ")


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(UnknownBackendError) as err:
        gpt2kit.load(backend="tensorflow")
    assert str(err.value) == f"unknown backend 'tensorflow'; known backends: {', '.join(backend_names())}"
    assert "torch" in backend_names()
