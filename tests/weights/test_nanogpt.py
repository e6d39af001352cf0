"""nanoGPT's ckpt.pt: the fixtures (saved as train.py saves, not by gpt2kit) against transformers,
compiled runs, the padded vocabulary, and what GPT-2 cannot be."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from gpt2kit import GPT2
from gpt2kit.errors import WeightsError
from gpt2kit.weights import detect_format, save_model
from gpt2kit.weights.info import describe_model
from gpt2kit.weights.layouts import HF, OURS
from helpers import hf_from_arrays, random_model, tiny_config, unxz

FIXTURE = Path(__file__).parents[1] / "fixtures" / "nanogpt"
IDS = torch.tensor([[0, 250, 251, 50000, 50256, 17, 4242, 9]])


@pytest.fixture
def ckpt(tmp_path) -> Path:
    return unxz(FIXTURE / "ckpt.pt.xz", tmp_path / "out")  # train.py's out_dir


def reference(config):
    arrays = dict(np.load(FIXTURE / "weights.npz"))
    names = {HF.file_name(n.format(i)): n.format(i) for n in OURS for i in range(config.n_layer)}
    return hf_from_arrays(arrays, names, config, out_in=True)


def one_line(err: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("name", ["ckpt.pt.xz", "ckpt_compiled.pt.xz"])
def test_fixture_matches_transformers(tmp_path, name):
    file = unxz(FIXTURE / name, tmp_path / "out", "ckpt.pt")
    assert detect_format(file) == detect_format(file.parent) == "nanogpt"
    ours = GPT2.from_pretrained(file.parent)
    c = ours.config
    assert (c.n_layer, c.n_head, c.n_embd, c.n_positions, c.vocab_size, c.tie_word_embeddings) == (
        2, 2, 16, 32, 50257, True)
    with torch.no_grad():
        assert (ours(IDS) - reference(c)(IDS).logits).abs().max() <= 1e-5


def test_written_checkpoint_is_train_pys(tmp_path, ckpt):
    model = GPT2.from_pretrained(ckpt)
    out = save_model(model, tmp_path / "written", fmt="nanogpt")
    data = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
    original = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert data["model_args"] == original["model_args"]
    assert data["model"].keys() == original["model"].keys()
    assert all(torch.equal(data["model"][k], original["model"][k]) for k in data["model"])
    assert data["model"]["lm_head.weight"].data_ptr() == data["model"]["transformer.wte.weight"].data_ptr()
    assert (data["iter_num"], data["optimizer"], data["config"]) == (0, None, {})
    assert isinstance(data["best_val_loss"], float)


def test_padded_vocabulary_loads_as_50304(tmp_path, ckpt):
    data = torch.load(ckpt, weights_only=True)
    wte = torch.cat([data["model"]["transformer.wte.weight"], torch.zeros(47, 16)])
    data["model"]["transformer.wte.weight"] = data["model"]["lm_head.weight"] = wte
    data["model_args"]["vocab_size"] = 50304
    torch.save(data, tmp_path / "ckpt.pt")
    model = GPT2.from_pretrained(tmp_path)
    assert model.config.vocab_size == 50304
    with torch.no_grad():
        assert model(IDS).shape[-1] == 50304
    assert "padded to 50304" in describe_model(tmp_path)["note"]


def test_bias_false_and_character_level_are_refused(tmp_path, ckpt):
    data = torch.load(ckpt, weights_only=True)
    data["model_args"]["bias"] = False
    data["model"] = {k: v for k, v in data["model"].items() if not k.endswith(".bias")}
    torch.save(data, tmp_path / "nobias.pt")
    with pytest.raises(WeightsError) as err:
        GPT2.from_pretrained(tmp_path / "nobias.pt")
    one_line(err, "nobias.pt", "bias=False", "no biases")

    char = tmp_path / "shakespeare_char"
    char.mkdir()
    data = torch.load(ckpt, weights_only=True)
    data["model_args"]["vocab_size"] = 65
    data["model"]["transformer.wte.weight"] = data["model"]["lm_head.weight"] = torch.zeros(65, 16)
    torch.save(data, char / "ckpt.pt")
    (char / "meta.pkl").write_bytes(b"not to be unpickled")
    with pytest.raises(WeightsError) as err:
        GPT2.from_pretrained(char)
    one_line(err, "65 tokens", "character-level", "meta.pkl")


def test_foreign_pickled_objects_are_refused(tmp_path, ckpt):
    data = torch.load(ckpt, weights_only=True)
    data["config"] = argparse.Namespace(lr=6e-4)  # any class is code weights_only will not run
    torch.save(data, tmp_path / "ckpt.pt")
    assert detect_format(tmp_path) == "nanogpt"
    with pytest.raises(WeightsError) as err:
        GPT2.from_pretrained(tmp_path)
    one_line(err, "ckpt.pt", "refused to unpickle")


def test_plain_state_dict_stays_hf(tmp_path, ckpt):
    data = torch.load(ckpt, weights_only=True)
    torch.save(data["model"], tmp_path / "pytorch_model.bin")
    assert detect_format(tmp_path / "pytorch_model.bin") == "hf"


def test_writer_refuses_what_nanogpt_cannot_hold(tmp_path):
    for option, value in [("tie_word_embeddings", False), ("n_inner", 100), ("reorder_and_upcast_attn", True)]:
        with pytest.raises(WeightsError) as err:
            save_model(random_model(tiny_config(**{option: value})), tmp_path / option, fmt="nanogpt")
        one_line(err, "nanoGPT", option)
    with pytest.raises(WeightsError) as err:
        save_model(random_model(tiny_config(vocab_size=300)), tmp_path / "small", fmt="nanogpt")
    one_line(err, "300 tokens", "character-level")
