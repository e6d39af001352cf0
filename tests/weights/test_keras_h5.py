"""gpt-tf2's Keras .h5 models: a fixture saved by Keras itself, round trips, broken files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gpt2kit import GPT2
from gpt2kit.errors import WeightsError
from gpt2kit.weights import detect_format, save_model
from gpt2kit.weights.info import describe_model
from helpers import hf_from_arrays, openai_names, random_model, tiny_config

h5py = pytest.importorskip("h5py")
FIXTURE = Path(__file__).parents[1] / "fixtures" / "keras"


def text(name: bytes | str) -> str:
    return name.decode() if isinstance(name, bytes) else name


@pytest.fixture
def tiny(tmp_path) -> Path:
    return shutil.copytree(FIXTURE / "tiny", tmp_path / "tiny")


def test_keras_model_reads_with_transformers_and_keras_logits():
    model = GPT2.from_pretrained(FIXTURE / "tiny")
    assert model.config.layer_norm_epsilon == 1e-14  # gpt-tf2's LayerNormalization, not GPT-2's 1e-5
    arrays = dict(np.load(FIXTURE / "tiny_weights.npz"))
    hf = hf_from_arrays(arrays, openai_names(2), model.config)
    ids = torch.from_numpy(arrays["keras/ids"]).long()
    with torch.no_grad():
        ours = model(ids)
        assert (ours - hf(ids).logits).abs().max() <= 1e-5
    assert (ours - torch.from_numpy(arrays["keras/logits"])).abs().max() <= 1e-5  # Keras's own forward pass


def test_written_h5_reads_back_identical_and_keeps_its_epsilon(tmp_path):
    model = GPT2.from_pretrained(FIXTURE / "tiny")
    save_model(model, tmp_path / "k", fmt="keras-h5")
    assert detect_format(tmp_path / "k" / "model.h5") == "keras-h5"
    back = GPT2.from_pretrained(tmp_path / "k")
    assert back.config.layer_norm_epsilon == 1e-14
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values(),
                                                 strict=True))
    with h5py.File(tmp_path / "k" / "model.h5") as f:  # Keras's layout: listed layers, listed weights
        layers = [text(n) for n in f["model_weights"].attrs["layer_names"]]
        assert layers[:3] == ["Embed-Token", "Embed-Token-Pos", "Encode-0-MultiHeadAtt-Norm"]
        att = f["model_weights/Encode-1-MultiHeadAtt"]
        assert text(att.attrs["weight_names"][0]) == "Encode-1-MultiHeadAtt/Encode-1-MultiHeadAtt_Wq:0"
        with h5py.File(FIXTURE / "tiny" / "tiny.h5") as keras_file:
            np.testing.assert_array_equal(att["Encode-1-MultiHeadAtt/Encode-1-MultiHeadAtt_Wk:0"][()],
                                          keras_file["model_weights/Encode-1-MultiHeadAtt/Encode-1-MultiHeadAtt/"
                                                     "Encode-1-MultiHeadAtt_Wk"][()])


def test_untied_head_is_refused(tmp_path):
    with pytest.raises(WeightsError, match="cannot hold tie_word_embeddings: false"):
        save_model(random_model(tiny_config(tie_word_embeddings=False)), tmp_path / "k", fmt="keras-h5")


def test_h5_without_gpt2_layers_is_one_line(tmp_path):
    (tmp_path / "hparams.json").write_text((FIXTURE / "tiny" / "hparams.json").read_text())
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("model_weights/dense/dense/kernel:0", data=np.zeros((2, 2), "f4"))
    with pytest.raises(WeightsError, match="without gpt-tf2's GPT-2 layers \\(looked for Embed-Token, ") as err:
        GPT2.from_pretrained(tmp_path / "other.h5")
    assert "\n" not in str(err.value)


def test_truncated_h5_is_one_line(tiny):
    data = (tiny / "tiny.h5").read_bytes()
    (tiny / "tiny.h5").write_bytes(data[: len(data) // 2])
    assert detect_format(tiny) == "keras-h5"
    with pytest.raises(WeightsError, match="tiny.h5: not a readable HDF5 model") as err:
        GPT2.from_pretrained(tiny)
    assert "\n" not in str(err.value)


def test_missing_hparams_is_one_line(tiny):
    (tiny / "hparams.json").unlink()
    with pytest.raises(WeightsError, match="no hparams.json beside it .* put the model's hparams.json"):
        GPT2.from_pretrained(tiny / "tiny.h5")


def test_info_shows_format_and_config():
    info = describe_model(FIXTURE / "tiny")
    assert info["format"] == "keras-h5" and info["dtype"] == "fp32"
    c = info["config"]
    assert (c.n_layer, c.n_head, c.n_embd, c.n_positions, c.vocab_size) == (2, 2, 16, 32, 96)
