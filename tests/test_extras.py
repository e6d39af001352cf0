"""Optional dependencies: a feature whose extra is missing says which extra brings it, in one line."""

from __future__ import annotations

import sys

import pytest

from gpt2kit import extras
from gpt2kit.errors import GPT2KitError
from gpt2kit.weights.download import download
from gpt2kit.weights.resolve import resolve_model_path


@pytest.fixture
def no_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # `import huggingface_hub` now fails


def test_require_returns_the_module():
    assert extras.require("json", "none", "reading JSON") is sys.modules["json"]


def test_require_names_the_extra(no_hub):
    with pytest.raises(extras.MissingExtraError) as err:
        extras.require("huggingface_hub", "hub", "loading 'gpt2'")
    assert isinstance(err.value, GPT2KitError)
    assert str(err.value) == "loading 'gpt2' needs huggingface_hub, which is not installed: pip install 'gpt2kit[hub]'"


def test_published_names_need_the_hub_extra(no_hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no folder named gpt2 here
    with pytest.raises(extras.MissingExtraError, match=r"loading 'gpt2-medium' from .*pip install 'gpt2kit\[hub\]'$"):
        resolve_model_path("355M")
    with pytest.raises(extras.MissingExtraError, match=r"--source hf.*pip install 'gpt2kit\[hub\]'$"):
        download("gpt2", source="hf", out=tmp_path / "m")
    assert resolve_model_path("default").is_dir()  # what needs no hub still works
