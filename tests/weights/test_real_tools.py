"""Files written by the tools themselves (nanoGPT's model.py and train.py's checkpoint dict, llm.c's
train_gpt2.py write_model / write_tokenizer; tests/fixtures/*/make_real_fixture.py) read with the
logits those tools computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gpt2kit import GPT2
from gpt2kit.weights import detect_format, save_model
from helpers import unxz

FIXTURES = Path(__file__).parents[1] / "fixtures"


def last_logits(model: GPT2, ids: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.from_numpy(ids))[0, -1]


def test_nanogpt_checkpoint_of_its_own_code_gives_its_logits(tmp_path):
    ckpt = unxz(FIXTURES / "nanogpt" / "real-ckpt.pt.xz", tmp_path / "out", "ckpt.pt")
    reference = np.load(FIXTURES / "nanogpt" / "real-logits.npz")
    assert detect_format(ckpt.parent) == "nanogpt"
    model = GPT2.from_pretrained(ckpt.parent)
    assert model.config.activation_function == "gelu"  # nanoGPT's MLP: nn.GELU(), the exact one
    got = last_logits(model, reference["ids"])
    assert (got - torch.from_numpy(reference["logits"])).abs().max() <= 1e-5
    # written back by gpt2kit, it reads the same (the GELU noted beside nanoGPT's keys)
    back = GPT2.from_pretrained(save_model(model, tmp_path / "again", fmt="nanogpt"))
    assert torch.equal(last_logits(back, reference["ids"]), got)


@pytest.mark.parametrize("name,tolerance", [("real-model.bin.xz", 1e-5), ("real-model_bf16.bin.xz", None)])
def test_llmc_model_of_its_own_write_model_gives_its_logits(tmp_path, name, tolerance):
    path = unxz(FIXTURES / "llmc" / name, tmp_path)
    reference = np.load(FIXTURES / "llmc" / "real-logits.npz")
    assert detect_format(path) == "llmc"
    model = GPT2.from_pretrained(path, dtype=torch.float32)
    got, want = last_logits(model, reference["ids"]), torch.from_numpy(reference["logits"])
    # bf16 weights: within bf16's precision of the fp32 logits (8 bits of mantissa)
    assert (got - want).abs().max() <= (tolerance or 0.02 * (want.max() - want.min()))


def test_llmc_tokenizer_file_equals_llm_cs_own(tmp_path):
    path = unxz(FIXTURES / "llmc" / "real-model.bin.xz", tmp_path / "src", "model.bin")
    written = save_model(GPT2.from_pretrained(path), tmp_path / "out", fmt="llmc")
    theirs = unxz(FIXTURES / "llmc" / "real-gpt2_tokenizer.bin.xz", tmp_path)
    assert (written / "gpt2_tokenizer.bin").read_bytes() == theirs.read_bytes()
    assert (written / "model.bin").read_bytes() == path.read_bytes()  # and the model file, byte for byte
