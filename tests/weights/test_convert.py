"""Where a model came from: recorded by convert, never carried along by a model in memory."""

from __future__ import annotations

import json
from pathlib import Path

from gpt2kit.weights import read_model
from gpt2kit.weights.convert import convert
from gpt2kit.weights.download import OPENAI_SIZES
from helpers import random_model

FIXTURES = Path(__file__).parents[1] / "fixtures"


def notes(folder: Path) -> dict | None:
    return json.loads((folder / "config.json").read_text()).get("gpt2kit")


def test_convert_records_the_source_and_keeps_its_notes(tmp_path):
    random_model().save_pretrained(tmp_path / "a", metadata={"origin": "a test", "random_init": True})
    convert(tmp_path / "a", tmp_path / "b")
    assert notes(tmp_path / "b") == {"origin": "a test", "random_init": True, "converted_from": f"hf: {tmp_path / 'a'}"}
    tf = FIXTURES / "openai" / "tiny"
    convert(tf, tmp_path / "c")
    assert notes(tmp_path / "c") == {"converted_from": f"openai: {tf}"}
    assert read_model(tmp_path / "c")[1].metadata == notes(tmp_path / "c")


def test_a_loaded_model_saved_again_claims_nothing(tmp_path):
    random_model().save_pretrained(tmp_path / "a", metadata={"origin": "a test", "random_init": True})
    model, info = read_model(tmp_path / "a")
    assert info.metadata["random_init"]
    model.save_pretrained(tmp_path / "b")  # trained since, perhaps: its old notes would be wrong
    assert notes(tmp_path / "b") is None


def test_openai_sizes_are_the_config_aliases():
    assert OPENAI_SIZES == {"gpt2": "124M", "gpt2-medium": "355M", "gpt2-large": "774M", "gpt2-xl": "1558M"}
