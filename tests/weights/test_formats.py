"""Formats told by content, folders shaped as each framework writes them, names that would
lead out of a model folder, and what `gpt2kit info` reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers

from gpt2kit import GPT2
from gpt2kit.errors import WeightsError
from gpt2kit.weights import detect_format, save_model
from gpt2kit.weights.info import describe_model
from helpers import hf_random_model, random_model, tiny_config

FIXTURES = Path(__file__).parents[1] / "fixtures"
MS = FIXTURES / "mindspore"
OPENAI = FIXTURES / "openai" / "tiny"


def same_weights(a: GPT2, b: GPT2) -> bool:
    return a.state_dict().keys() == b.state_dict().keys() and all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.fixture
def hf_folder(tmp_path) -> Path:
    hf_random_model(tiny_config()).save_pretrained(tmp_path / "hf")
    return tmp_path / "hf"


@pytest.fixture
def ms_folder(tmp_path) -> Path:
    """As MindSpore's GPT-2 scripts leave it: the hparams beside a checkpoint named by run and step."""
    folder = tmp_path / "ms"
    folder.mkdir()
    shutil.copyfile(MS / "hparams.json", folder / "hparams.json")
    shutil.copyfile(MS / "gpt2_tiny_fp32.ckpt", folder / "gpt2-1_500.ckpt")
    return folder


@pytest.fixture
def tf_folder(tmp_path) -> Path:
    shutil.copytree(OPENAI, tmp_path / "tf")
    return tmp_path / "tf"


def test_mindspore_folder_with_hparams_is_mindspore(ms_folder):
    assert detect_format(ms_folder) == "mindspore"
    assert same_weights(GPT2.from_pretrained(ms_folder), GPT2.from_pretrained(MS / "gpt2_tiny_fp32.ckpt"))


def test_each_framework_folder_and_file(hf_folder, tf_folder, ms_folder):
    assert detect_format(hf_folder) == "hf"
    assert detect_format(tf_folder) == "openai"
    assert detect_format(MS / "gpt2_tiny_fp16.ckpt") == "mindspore"
    assert detect_format(hf_folder / "model.safetensors") == "hf"
    assert detect_format(tf_folder / "model.ckpt.index") == "openai"
    # a file given on its own loads as its folder does
    assert same_weights(GPT2.from_pretrained(hf_folder / "model.safetensors"), GPT2.from_pretrained(hf_folder))
    assert same_weights(GPT2.from_pretrained(tf_folder / "model.ckpt.index"), GPT2.from_pretrained(tf_folder))


def test_sharded_and_bin_folders(tmp_path):
    hf = hf_random_model(tiny_config())
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="2MB")
    assert detect_format(tmp_path / "sharded") == "hf"
    (tmp_path / "bin").mkdir()
    hf.config.save_pretrained(tmp_path / "bin")
    torch.save(hf.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    assert detect_format(tmp_path / "bin") == "hf"
    assert detect_format(tmp_path / "bin" / "pytorch_model.bin") == "hf"


def test_names_do_not_decide(tmp_path, hf_folder, tf_folder):
    # a safetensors file named like a checkpoint, and a TensorFlow folder without hparams or checkpoint file
    shutil.copyfile(hf_folder / "config.json", tmp_path / "config.json")
    shutil.copyfile(hf_folder / "model.safetensors", tmp_path / "weights.ckpt")
    assert detect_format(tmp_path / "weights.ckpt") == "hf"
    assert same_weights(GPT2.from_pretrained(tmp_path / "weights.ckpt"), GPT2.from_pretrained(hf_folder))
    (tf_folder / "checkpoint").unlink()
    assert detect_format(tf_folder) == "openai"


def test_a_file_of_no_known_format_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("model_checkpoint_path: \"model.ckpt\"\n")
    with pytest.raises(WeightsError, match="notes.txt: a file in no known format") as err:
        GPT2.from_pretrained(tmp_path / "notes.txt")
    assert "\n" not in str(err.value)


def test_damaged_mindspore_file_beside_hparams_names_the_problem(ms_folder):
    (ms_folder / "gpt2-1_500.ckpt").write_bytes(b"\xff" * 64)
    with pytest.raises(WeightsError, match="not a MindSpore checkpoint"):
        GPT2.from_pretrained(ms_folder)


def test_lone_weights_file_without_config(tmp_path, hf_folder):
    shutil.copyfile(hf_folder / "model.safetensors", tmp_path / "model.safetensors")
    with pytest.raises(WeightsError, match="no config.json beside it"):
        GPT2.from_pretrained(tmp_path / "model.safetensors")


# ---- names read from inside a folder ---------------------------------------------------------

def _outside_checkpoint(tmp_path) -> Path:
    shutil.copytree(OPENAI, tmp_path / "elsewhere")
    return tmp_path / "elsewhere" / "model.ckpt"


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_checkpoint_file_cannot_lead_out_of_the_folder(tmp_path, how):
    outside = _outside_checkpoint(tmp_path)
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copyfile(OPENAI / "hparams.json", folder / "hparams.json")
    name = "../elsewhere/model.ckpt" if how == "relative" else str(outside)
    (folder / "checkpoint").write_text(f'model_checkpoint_path: "{name}"\n')
    with pytest.raises(WeightsError, match="leaves the folder") as err:
        GPT2.from_pretrained(folder)
    assert name in str(err.value) and "\n" not in str(err.value)


def test_checkpoint_names_inside_the_folder_are_followed(tf_folder):
    (tf_folder / "run1").mkdir()
    for f in tf_folder.glob("model.ckpt.*"):
        shutil.move(f, tf_folder / "run1" / f.name)
    (tf_folder / "checkpoint").write_text('model_checkpoint_path: "run1/./model.ckpt"\n')
    expected = GPT2.from_pretrained(tf_folder)
    (tf_folder / "checkpoint").write_text(f'model_checkpoint_path: "{tf_folder.absolute()}/run1/model.ckpt"\n')
    assert same_weights(GPT2.from_pretrained(tf_folder), expected)


@pytest.mark.parametrize("how", ["relative", "absolute", "through a subfolder"])
def test_shard_index_cannot_lead_out_of_the_folder(tmp_path, how):
    hf_random_model(tiny_config()).save_pretrained(tmp_path / "m", max_shard_size="2MB")
    index = tmp_path / "m" / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    first = next(iter(data["weight_map"]))
    shutil.copyfile(tmp_path / "m" / data["weight_map"][first], tmp_path / "outside.safetensors")  # a real shard
    (tmp_path / "m" / "a").mkdir()
    shard = {"relative": "../outside.safetensors", "absolute": str(tmp_path / "outside.safetensors"),
             "through a subfolder": "a/../../outside.safetensors"}[how]
    data["weight_map"] = {k: shard if v == data["weight_map"][first] else v for k, v in data["weight_map"].items()}
    index.write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="leaves the folder") as err:
        GPT2.from_pretrained(tmp_path / "m")
    assert shard in str(err.value)


# ---- gpt2kit info and the files written with a model -----------------------------------------

@pytest.mark.parametrize("dtype,name", [(torch.float32, "fp32"), (torch.bfloat16, "bf16"), (torch.float16, "fp16")])
def test_info_names_dtypes_as_the_flags_do(tmp_path, dtype, name):
    model = random_model()
    save_model(model, tmp_path / "hf", dtype=dtype)
    assert describe_model(tmp_path / "hf")["dtype"] == name
    if dtype != torch.bfloat16:
        save_model(model.to(dtype), tmp_path / "oa", fmt="openai")
        assert describe_model(tmp_path / "oa")["dtype"] == name


def test_info_of_each_format(tf_folder, ms_folder):
    assert describe_model(tf_folder)["dtype"] == "fp32"
    assert describe_model(ms_folder)["dtype"] == "fp32"
    assert describe_model(ms_folder)["format"] == "mindspore"
    assert describe_model(MS / "gpt2_tiny_fp16.ckpt")["dtype"] == "fp16"


def test_tokenizer_config_states_the_model_context(tmp_path):
    model = random_model(tiny_config(n_positions=48))
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "tokenizer_config.json").read_text())["model_max_length"] == 48
    assert transformers.AutoTokenizer.from_pretrained(tmp_path / "m").model_max_length == 48
