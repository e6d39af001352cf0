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
