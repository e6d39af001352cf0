"""Fine-tuning on `label: text` lines: a `gpt2kit finetune` run folder, whatever the size of the set."""

from __future__ import annotations

import json

import pytest

from gpt2kit.augmentation.tune import LINES_FILE, TuneSettings, tune_on_lines
from gpt2kit.errors import AugmentationError
from gpt2kit.tokenizer import Tokenizer
from gpt2kit.weights import read_model
from helpers import random_model, tiny_config


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return random_model(tiny_config(n_positions=256)).save_pretrained(tmp_path_factory.mktemp("tiny") / "model")


def test_a_set_shorter_than_a_window_still_trains(model_path, tmp_path):
    """Three verses hold fewer tokens than --seq-len: the window shrinks to what they hold, to the token."""
    texts, labels = ["Jesus wept.", "Rejoice evermore.", "Pray without ceasing."], ["NT", "NT", "OT"]
    result = tune_on_lines(str(model_path), texts, labels, tmp_path / "run",
                           TuneSettings(steps=1, batch_size=1, seq_len=1000), name="tiny", progress=False)
    assert result.steps == 1
    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    tok = Tokenizer.from_pretrained()
    tokens = sum(len(tok.encode(f"{label}: {text}")) for text, label in zip(texts, labels, strict=True))
    assert config["seq_len"] == tokens + 2 - 1  # two <|endoftext|> join the lines; a window reads one more
    assert (tmp_path / "run" / LINES_FILE).read_text().splitlines()[2] == '{"text": "OT: Pray without ceasing."}'
    model, info = read_model(result.model_dir)
    assert "tiny.lines.jsonl" in info.metadata["origin"]


def test_a_run_folder_holding_files_is_refused(model_path, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    with pytest.raises(AugmentationError, match="holds files already"):
        tune_on_lines(str(model_path), ["a b"], ["x"], tmp_path / "run", progress=False)
