"""MindSpore checkpoints: fixtures written by real MindSpore, name prefixes, broken files."""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from gpt2kit import GPT2, GPT2Config
from gpt2kit.errors import WeightsError
from gpt2kit.weights.layouts import MINDSPORE
from gpt2kit.weights.mindspore import read_ckpt, write_ckpt
from helpers import hf_from_arrays, random_model, tiny_config

FIXTURE = Path(__file__).parents[1] / "fixtures" / "mindspore"


def hf_names(n_layer: int) -> dict[str, str]:
    from gpt2kit.weights.layouts import HF

    ours = list(random_model(tiny_config(n_layer=n_layer)).state_dict())
    return {HF.file_name(n): MINDSPORE.file_name(n) for n in ours}


@pytest.mark.parametrize("name,atol", [("gpt2_tiny_fp32.ckpt", 1e-5), ("gpt2_tiny_split.ckpt", 1e-5),
                                       ("gpt2_tiny_fp16.ckpt", 1e-5)])
def test_mindspore_checkpoint_matches_transformers(name, atol):
    ours = GPT2.from_pretrained(FIXTURE / name)
    arrays = dict(np.load(FIXTURE / "gpt2_tiny_weights.npz"))
    if "fp16" in name:  # the reference is what fp16 storage keeps
        arrays = {k: v.astype(np.float16).astype(np.float32) for k, v in arrays.items()}
    hf = hf_from_arrays(arrays, hf_names(2), ours.config)
    ids = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(ids) - hf(ids).logits).abs().max() <= atol


def test_split_tensor_is_joined():
    pieces = read_ckpt(FIXTURE / "gpt2_tiny_split.ckpt")
    whole = read_ckpt(FIXTURE / "gpt2_tiny_fp32.ckpt")
    assert torch.equal(pieces["gpt2_embedding_lookup.embedding_table"], whole["gpt2_embedding_lookup.embedding_table"])


def test_round_trip_and_wrapped_names(tmp_path):
    model = random_model()
    tensors = {MINDSPORE.file_name(k): MINDSPORE.to_file(k, v) for k, v in model.state_dict().items()}
    # a fine-tuning network: prefixed names, a head of its own, optimizer state, a crc_check trailer
    wrapped = {"gpt2.gpt2." + k: v for k, v in tensors.items()}
    wrapped["gpt2.dense1.weight"] = torch.zeros(2, 64)
    wrapped["moments.gpt2.gpt2.layer_norm.layer_norm.gamma"] = torch.zeros(64)
    write_ckpt(wrapped, tmp_path / "ft.ckpt")
    body = (tmp_path / "ft.ckpt").read_bytes()
    with (tmp_path / "ft.ckpt").open("ab") as f:
        f.write(b"crc_num" + zlib.crc32(body).to_bytes(10, "big"))
    config = model.config
    (tmp_path / "hparams.json").write_text(
        f'{{"n_vocab": {config.vocab_size}, "n_ctx": {config.n_positions}, "n_embd": {config.n_embd}, '
        f'"n_head": {config.n_head}, "n_layer": {config.n_layer}}}')
    back = GPT2.from_pretrained(tmp_path / "ft.ckpt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values(),
                                                 strict=True))


def test_crc_check_trailer_of_real_mindspore_is_verified(tmp_path):
    """crc_check.ckpt was saved by MindSpore 2.10 with crc_check=True (make_crc_fixture.py)."""
    data = (FIXTURE / "crc_check.ckpt").read_bytes()
    tensors = read_ckpt(FIXTURE / "crc_check.ckpt")
    assert torch.equal(tensors["a"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
    assert torch.equal(tensors["b"], torch.ones(4, dtype=torch.float16))
    damaged = bytearray(data)
    damaged[data.index(np.float32(1).tobytes())] ^= 1  # one bit of a[0, 1]
    (tmp_path / "bad.ckpt").write_bytes(bytes(damaged))
    with pytest.raises(WeightsError, match="CRC mismatch"):
        read_ckpt(tmp_path / "bad.ckpt")


def test_head_count_from_a_published_width(tmp_path):
    config = GPT2Config(vocab_size=50, n_positions=8, n_embd=768, n_head=12, n_layer=1)
    model = random_model(config)
    write_ckpt({MINDSPORE.file_name(k): MINDSPORE.to_file(k, v) for k, v in model.state_dict().items()},
               tmp_path / "m.ckpt")
    assert GPT2.from_pretrained(tmp_path / "m.ckpt").config == GPT2Config(
        vocab_size=50, n_positions=8, n_embd=768, n_head=12, n_layer=1)


@pytest.fixture
def ckpt(tmp_path) -> Path:
    shutil.copy(FIXTURE / "gpt2_tiny_fp32.ckpt", tmp_path / "m.ckpt")
    shutil.copy(FIXTURE / "hparams.json", tmp_path / "hparams.json")
    return tmp_path / "m.ckpt"


def test_empty_file(ckpt):
    ckpt.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty file"):
        GPT2.from_pretrained(ckpt)


@pytest.mark.parametrize("content", [b"this is not protobuf\n" * 20, bytes(range(256)) * 4])
def test_not_protobuf(ckpt, content):
    ckpt.write_bytes(content)
    with pytest.raises(WeightsError, match="not a MindSpore checkpoint"):
        GPT2.from_pretrained(ckpt)


def test_truncated(ckpt):
    ckpt.write_bytes(ckpt.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="m.ckpt"):
        GPT2.from_pretrained(ckpt)


def test_unknown_dtype_missing_tensor_wrong_shape(ckpt):
    tensors = read_ckpt(ckpt)
    bad = dict(tensors)
    del bad["layer_norm.layer_norm.beta"]
    write_ckpt(bad, ckpt)
    with pytest.raises(WeightsError, match="missing tensor 'layer_norm.layer_norm.beta'"):
        GPT2.from_pretrained(ckpt)
    bad = dict(tensors)
    bad["gpt2_decoder.layers.0.feedforward.c_fc.weight"] = torch.zeros(96, 24)
    write_ckpt(bad, ckpt)
    with pytest.raises(WeightsError, match=r"c_fc.weight' has shape \(96, 24\), hparams.json implies \(24, 96\)"):
        GPT2.from_pretrained(ckpt)
    data = bytearray(ckpt.read_bytes())
    at = data.find(b"Float32")
    data[at:at + 7] = b"Float99"
    ckpt.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="unknown dtype 'Float99'"):
        GPT2.from_pretrained(ckpt)


def test_unknown_width_without_hparams(tmp_path):
    shutil.copy(FIXTURE / "gpt2_tiny_fp32.ckpt", tmp_path / "m.ckpt")
    with pytest.raises(WeightsError, match="cannot tell the head count"):
        GPT2.from_pretrained(tmp_path / "m.ckpt")
