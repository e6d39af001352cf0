"""OpenAI's TensorFlow checkpoints: a fixture written by real TensorFlow, round trips, broken files."""

from __future__ import annotations

import filecmp
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gpt2kit import GPT2
from gpt2kit.errors import ConfigError, WeightsError
from gpt2kit.weights import protobuf as pb
from gpt2kit.weights import save_model
from gpt2kit.weights.tensorbundle import (
    MAGIC,
    _build_block,
    masked_crc,
    read_table,
    snappy_decompress,
    write_bundle,
    write_table,
)
from helpers import hf_from_arrays, openai_names, random_model, tiny_config

FIXTURE = Path(__file__).parents[1] / "fixtures" / "openai"


@pytest.fixture
def tiny(tmp_path) -> Path:
    folder = tmp_path / "tiny"
    shutil.copytree(FIXTURE / "tiny", folder)
    return folder


def test_tensorflow_checkpoint_matches_transformers():
    ours = GPT2.from_pretrained(FIXTURE / "tiny")
    arrays = dict(np.load(FIXTURE / "tiny_weights.npz"))
    hf = hf_from_arrays(arrays, openai_names(ours.config.n_layer), ours.config)
    ids = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(ids) - hf(ids).logits).abs().max() <= 1e-5


def test_round_trip_is_bit_exact(tmp_path):
    model = GPT2.from_pretrained(FIXTURE / "tiny")
    model.save_pretrained(tmp_path / "hf")
    save_model(GPT2.from_pretrained(tmp_path / "hf"), tmp_path / "openai", fmt="openai")
    for name in ("model.ckpt.index", "model.ckpt.data-00000-of-00001", "hparams.json", "checkpoint"):
        assert filecmp.cmp(tmp_path / "openai" / name, FIXTURE / "tiny" / name, shallow=False), name


def test_gpt2kit_model_through_openai_layout(tmp_path):
    model = random_model(tiny_config(n_layer=3))
    save_model(model, tmp_path / "oa", fmt="openai")
    back = GPT2.from_pretrained(tmp_path / "oa")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values(),
                                                 strict=True))


def test_absolute_checkpoint_path_from_another_machine(tiny):
    (tiny / "checkpoint").write_text('model_checkpoint_path: "/content/checkpoint/run1/model.ckpt"\n')
    assert GPT2.from_pretrained(tiny).config.n_embd == 24


def test_optimizer_slots_are_passed_over(tmp_path):
    from gpt2kit.weights.layouts import OPENAI

    model = random_model()
    save_model(model, tmp_path / "oa", fmt="openai")
    tensors = OPENAI.export(model.state_dict())
    tensors["model/h0/attn/c_attn/w/Adam"] = lambda: torch.zeros(3)  # as fine-tuning scripts save them
    tensors["global_step"] = lambda: torch.tensor(5, dtype=torch.int64)
    write_bundle(tmp_path / "oa" / "model.ckpt", tensors)
    assert torch.equal(GPT2.from_pretrained(tmp_path / "oa").wte.weight, model.wte.weight)


def _block_with_trailer(contents: bytes, kind: int) -> bytes:
    return contents + bytes([kind]) + struct.pack("<I", masked_crc(contents + bytes([kind])))


def test_snappy_blocks_are_read(tmp_path):
    # "abc" as a literal, then a 9-byte copy from 3 back
    assert snappy_decompress(bytes([12, 0x08]) + b"abc" + bytes([0x15, 3])) == b"abcabcabcabc"
    block = _build_block([(b"a", b"1"), (b"b", b"22")])
    snappy = pb.write_varint(len(block)) + bytes([(len(block) - 1) << 2]) + block  # one literal
    out = bytearray(_block_with_trailer(snappy, 1))
    meta, index = _build_block([]), _build_block([(b"c", pb.write_varint(0) + pb.write_varint(len(snappy)))])
    meta_handle = pb.write_varint(len(out)) + pb.write_varint(len(meta))
    out += _block_with_trailer(meta, 0)
    index_handle = pb.write_varint(len(out)) + pb.write_varint(len(index))
    out += _block_with_trailer(index, 0)
    out += (meta_handle + index_handle).ljust(40, b"\x00") + struct.pack("<Q", MAGIC)
    (tmp_path / "t.index").write_bytes(bytes(out))
    assert [(k, bytes(v)) for k, v in read_table(tmp_path / "t.index")] == [(b"a", b"1"), (b"b", b"22")]


# ---- broken checkpoints: one clear line each ---------------------------------------------------------


def test_truncated_index(tiny):
    index = tiny / "model.ckpt.index"
    index.write_bytes(index.read_bytes()[:30])
    with pytest.raises(WeightsError, match="truncated index"):
        GPT2.from_pretrained(tiny)


def test_truncated_index_body(tiny):
    index = tiny / "model.ckpt.index"
    data = index.read_bytes()
    index.write_bytes(data[:400] + data[-48:])
    with pytest.raises(WeightsError, match="model.ckpt.index"):
        GPT2.from_pretrained(tiny)


@pytest.mark.parametrize("name, offset, bit, message", [
    ("model.ckpt.index", -1, 0xFF, "wrong footer magic"),
    ("model.ckpt.index", 20, 0x01, "CRC mismatch"),  # inside the data block
    ("model.ckpt.data-00000-of-00001", -5, 0x40, "CRC mismatch for tensor 'model/wte'"),  # the last tensor
])
def test_a_flipped_bit_is_found(tiny, name, offset, bit, message):
    data = bytearray((tiny / name).read_bytes())
    data[offset] ^= bit
    (tiny / name).write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=message):
        GPT2.from_pretrained(tiny)


def test_missing_data_shard(tiny):
    (tiny / "model.ckpt.data-00000-of-00001").unlink()
    with pytest.raises(WeightsError, match="data shard .* is missing"):
        GPT2.from_pretrained(tiny)


def test_missing_tensor(tmp_path):
    from gpt2kit.weights.layouts import OPENAI

    save_model(random_model(), tmp_path / "oa", fmt="openai")
    tensors = OPENAI.export(random_model().state_dict())
    del tensors["model/h1/mlp/c_proj/b"]
    write_bundle(tmp_path / "oa" / "model.ckpt", tensors)
    with pytest.raises(WeightsError, match="missing tensor 'model/h1/mlp/c_proj/b'"):
        GPT2.from_pretrained(tmp_path / "oa")


def test_wrong_shape_and_inconsistent_hparams(tiny):
    (tiny / "hparams.json").write_text('{"n_vocab": 300, "n_ctx": 32, "n_embd": 32, "n_head": 4, "n_layer": 2}')
    with pytest.raises(WeightsError, match=r"has shape \(.*\), hparams.json implies"):
        GPT2.from_pretrained(tiny)
    (tiny / "hparams.json").write_text('{"n_vocab": 300, "n_ctx": 32, "n_embd": 24, "n_head": 4}')
    with pytest.raises(ConfigError, match="hparams.json: missing required key"):
        GPT2.from_pretrained(tiny)


def test_unknown_dtype(tmp_path):
    entries = [(b"", pb.field_varint(1, 1)),
               (b"model/wte", pb.field_varint(1, 99) + pb.field_varint(5, 4) + pb.field_fixed32(6, 0))]
    (tmp_path / "m").mkdir()
    write_table(tmp_path / "m" / "model.ckpt.index", entries)
    (tmp_path / "m" / "hparams.json").write_text('{"n_vocab": 3, "n_ctx": 4, "n_embd": 4, "n_head": 1, "n_layer": 1}')
    with pytest.raises(WeightsError, match="unknown or unsupported TensorFlow dtype 99"):
        GPT2.from_pretrained(tmp_path / "m")


def test_table_with_many_blocks_round_trips(tmp_path):
    entries = [(f"model/h{i:03d}/w".encode(), bytes([i % 251]) * 5000) for i in range(200)]  # ~1 MB: 4+ blocks
    write_table(tmp_path / "t.index", entries)
    assert [(k, bytes(v)) for k, v in read_table(tmp_path / "t.index")] == entries
