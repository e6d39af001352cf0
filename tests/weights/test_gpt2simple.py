"""gpt-2-simple run folders (checkpoint/run1/): several saves by step, written by real TensorFlow."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gpt2kit import GPT2
from gpt2kit.errors import WeightsError
from gpt2kit.weights import save_model
from gpt2kit.weights.convert import convert
from gpt2kit.weights.info import describe_model
from helpers import hf_from_arrays, openai_names, random_model, tiny_config

FIXTURE = Path(__file__).parents[1] / "fixtures" / "gpt2simple"
IDS = torch.randint(0, 96, (2, 32), generator=torch.Generator().manual_seed(0))


def reference(prefix: str, config) -> torch.Tensor:
    """transformers' logits for the weights the fixture saved under `prefix` (step1, step2, adam)."""
    arrays = {k.removeprefix(prefix + "/"): v for k, v in np.load(FIXTURE / "weights.npz").items()
              if k.startswith(prefix + "/")}
    with torch.no_grad():
        return hf_from_arrays(arrays, openai_names(config.n_layer), config)(IDS).logits


def logits(model: GPT2) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS)


@pytest.mark.parametrize("step", [1, 2])
def test_each_saved_step_reads_with_transformers_logits(step):
    model = GPT2.from_pretrained(FIXTURE / "run1", checkpoint_step=step)
    assert (logits(model) - reference(f"step{step}", model.config)).abs().max() <= 1e-5


def test_the_latest_step_is_read_by_default():
    model = GPT2.from_pretrained(FIXTURE / "run1")  # its checkpoint file names a Colab path: model-2 here
    assert (logits(model) - reference("step2", model.config)).abs().max() <= 1e-5


def test_a_run_saved_with_adam_slots_reads_its_weights():
    model = GPT2.from_pretrained(FIXTURE / "run_adam")
    assert (logits(model) - reference("adam", model.config)).abs().max() <= 1e-5


def test_an_unknown_step_lists_the_saved_ones():
    with pytest.raises(WeightsError, match=r"no checkpoint of step 7 \(saved steps: 1, 2\)") as err:
        GPT2.from_pretrained(FIXTURE / "run1", checkpoint_step=7)
    assert "\n" not in str(err.value)


def test_a_step_is_refused_where_there_are_no_steps(tmp_path):
    save_model(random_model(tiny_config()), tmp_path / "oa", fmt="openai")  # one unnumbered model.ckpt
    with pytest.raises(WeightsError, match="no checkpoints saved by step"):
        GPT2.from_pretrained(tmp_path / "oa", checkpoint_step=1)
    save_model(random_model(tiny_config()), tmp_path / "hf")
    with pytest.raises(WeightsError, match="a hf model holds one checkpoint; picking step 1 is only for TensorFlow"):
        GPT2.from_pretrained(tmp_path / "hf", checkpoint_step=1)


def test_convert_picks_a_step(tmp_path):
    convert(FIXTURE / "run1", tmp_path / "hf", checkpoint_step=1)
    assert torch.equal(logits(GPT2.from_pretrained(tmp_path / "hf")),
                       logits(GPT2.from_pretrained(FIXTURE / "run1", checkpoint_step=1)))


def test_info_describes_the_run(tmp_path):
    info = describe_model(FIXTURE / "run1")
    assert info["format"] == "openai"
    assert info["run"] == {"name": "run1", "step": 2, "saved_steps": [1, 2], "counter": 2}
    assert describe_model(FIXTURE / "run1", checkpoint_step=1)["run"]["step"] == 1
    assert describe_model(FIXTURE / "run_adam")["run"] == {"name": "run_adam", "step": 5, "saved_steps": [5],
                                                            "counter": 5}
    run = shutil.copytree(FIXTURE / "run1", tmp_path / "run1")
    (run / "counter").unlink()  # a folder copied without it: the weights are still described
    assert describe_model(run)["run"]["counter"] is None
