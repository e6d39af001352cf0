"""llm.c's model.bin: the fixture (written from llm.c's layout, not by gpt2kit) against transformers,
bf16 files, the tokenizer file, detection by content, and damaged files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gpt2kit import GPT2
from gpt2kit.errors import WeightsError
from gpt2kit.tokenizer import Tokenizer
from gpt2kit.weights import detect_format, save_model
from gpt2kit.weights.info import describe_model
from gpt2kit.weights.layouts import HF, OURS
from helpers import hf_from_arrays, random_model, tiny_config, unxz

FIXTURE = Path(__file__).parents[1] / "fixtures" / "llmc"
IDS = torch.tensor([[0, 250, 251, 50000, 50256, 17, 4242, 9]])


@pytest.fixture
def folder(tmp_path) -> Path:
    """As llm.c's dev folder holds them: the fp32 and bf16 models beside the tokenizer file."""
    unxz(FIXTURE / "model.bin.xz", tmp_path / "llmc")
    unxz(FIXTURE / "gpt2_tokenizer.bin.xz", tmp_path / "llmc")
    return tmp_path / "llmc"


def reference(config, bf16: bool = False):
    arrays = dict(np.load(FIXTURE / "weights.npz"))
    if bf16:
        arrays = {k: torch.from_numpy(v).to(torch.bfloat16).float().numpy() for k, v in arrays.items()}
    names = {HF.file_name(n.format(i)): n.format(i) for n in OURS for i in range(config.n_layer)}
    return hf_from_arrays(arrays, names, config, out_in=True)


def test_fixture_matches_transformers(folder):
    assert detect_format(folder) == "llmc"
    ours = GPT2.from_pretrained(folder)
    assert (ours.config.n_layer, ours.config.n_head, ours.config.n_embd, ours.config.n_positions,
            ours.config.vocab_size) == (2, 2, 16, 32, 50257)
    with torch.no_grad():
        assert (ours(IDS) - reference(ours.config)(IDS).logits).abs().max() <= 1e-5


def test_bf16_version_5_reads_in_bf16(tmp_path):
    file = unxz(FIXTURE / "model_bf16.bin.xz", tmp_path)
    from gpt2kit.weights.llmc import read_llmc

    config, state = read_llmc(file)  # dtype None: the file's
    assert {t.dtype for t in state.values()} == {torch.bfloat16}
    want = torch.from_numpy(np.load(FIXTURE / "weights.npz")["h.1.mlp.c_fc.weight"]).to(torch.bfloat16)
    assert torch.equal(state["h.1.mlp.c_fc.weight"], want)
    ours = GPT2.from_pretrained(file, dtype=torch.float32)
    with torch.no_grad():
        assert (ours(IDS) - reference(config, bf16=True)(IDS).logits).abs().max() <= 1e-5
    assert describe_model(file)["dtype"] == "bf16"


def test_written_files_are_llmcs(tmp_path, folder):
    """gpt2kit's writer gives the fixture's bytes back: the model read and written, and the tokenizer."""
    out = save_model(GPT2.from_pretrained(folder), tmp_path / "out", fmt="llmc")
    assert (out / "model.bin").read_bytes() == (folder / "model.bin").read_bytes()
    assert (out / "gpt2_tokenizer.bin").read_bytes() == (folder / "gpt2_tokenizer.bin").read_bytes()
    bf16 = save_model(GPT2.from_pretrained(folder), tmp_path / "bf16", fmt="llmc", dtype=torch.bfloat16)
    assert (bf16 / "model.bin").read_bytes() == unxz(FIXTURE / "model_bf16.bin.xz", tmp_path).read_bytes()


def test_detection_by_content(tmp_path, folder):
    assert detect_format(folder / "model.bin") == "llmc"
    (folder / "model.bin").rename(folder / "gpt2_124M.bin")  # llm.c's own name
    assert detect_format(folder) == "llmc"
    assert GPT2.from_pretrained(folder).config.n_layer == 2
    only_tokenizer = tmp_path / "tok"
    only_tokenizer.mkdir()
    (folder / "gpt2_tokenizer.bin").rename(only_tokenizer / "gpt2_tokenizer.bin")
    with pytest.raises(WeightsError, match="no model in a known format"):
        detect_format(only_tokenizer)
    with pytest.raises(WeightsError, match="tokenizer file, not a model"):
        detect_format(only_tokenizer / "gpt2_tokenizer.bin")


def test_two_models_in_a_folder_are_named(tmp_path, folder):
    unxz(FIXTURE / "model_bf16.bin.xz", folder)
    with pytest.raises(WeightsError, match=r"found 2 \(model.bin, model_bf16.bin\): name one"):
        GPT2.from_pretrained(folder)
    assert GPT2.from_pretrained(folder / "model_bf16.bin").config.n_embd == 16


def one_line(err: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_damaged_files(tmp_path, folder):
    data = (folder / "model.bin").read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.bin").write_bytes(data[:-100])
    with pytest.raises(WeightsError) as err:
        GPT2.from_pretrained(bad / "model.bin")
    one_line(err, "model.bin", "truncated", f"{len(data) - 100} bytes, expected {len(data)}")
    (bad / "model.bin").write_bytes(data[:300])
    with pytest.raises(WeightsError) as err:
        GPT2.from_pretrained(bad)
    one_line(err, "truncated", "300 bytes")
    (bad / "model.bin").write_bytes(struct.pack("<i", 20240325) + data[4:])
    with pytest.raises(WeightsError) as err:
        GPT2.from_pretrained(bad / "model.bin")
    one_line(err, "not an llm.c model file", "magic number 20240325")
    (bad / "model.bin").write_bytes(data[:4] + struct.pack("<i", 4) + data[8:])
    with pytest.raises(WeightsError) as err:
        GPT2.from_pretrained(bad)
    one_line(err, "version 4", "3 (fp32) and 5 (bf16)")


def test_writer_refuses_what_llmc_cannot_hold(tmp_path):
    with pytest.raises(WeightsError) as err:
        save_model(random_model(tiny_config()), tmp_path / "a", fmt="llmc", dtype=torch.float16)
    one_line(err, "fp32 or bf16", "float16")
    for option, value in [("tie_word_embeddings", False), ("n_inner", 100), ("layer_norm_epsilon", 1e-6),
                          ("scale_attn_by_inverse_layer_idx", True)]:
        with pytest.raises(WeightsError) as err:
            save_model(random_model(tiny_config(**{option: value})), tmp_path / option, fmt="llmc")
        one_line(err, "llm.c", option)
    assert not list(tmp_path.iterdir())  # nothing left behind


def test_the_tokenizer_file_holds_gpt2s_token_bytes(folder):
    data = (folder / "gpt2_tokenizer.bin").read_bytes()
    assert struct.unpack_from("<4i", data) == (20240328, 2, 50257, 50256)
    tokenizer, pos = Tokenizer.from_pretrained(), 1024
    for i in range(50257):
        n = data[pos]
        assert data[pos + 1:pos + 1 + n] == tokenizer.token_bytes(i)
        pos += 1 + n
    assert pos == len(data)
