"""Fixtures of the server tests: the shipped model, served behind an API key."""

from __future__ import annotations

import pytest

import gpt2kit
from gpt2kit.backends.loaded import LoadedModel
from serving_helpers import API_KEY, running_server


@pytest.fixture(scope="session")
def shipped() -> LoadedModel:
    return gpt2kit.load()


@pytest.fixture(scope="session")
def server(shipped):
    """The shipped model behind an API key."""
    with running_server(shipped, api_key=API_KEY) as running:
        yield running


@pytest.fixture(scope="session")
def tiny_loaded() -> LoadedModel:
    """A tiny random model: fast steps, for tests of the server's own behaviour."""
    import torch

    from gpt2kit.tokenizer import Tokenizer
    from helpers import random_model, tiny_config

    return LoadedModel(random_model(tiny_config(n_positions=256)), Tokenizer.from_pretrained(), "tiny", None, "hf",
                       "torch", torch.float32)
