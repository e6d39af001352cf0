"""Every format gpt2kit writes reads back to the same model: identical logits."""

from __future__ import annotations

import pytest
import torch

from gpt2kit import GPT2
from gpt2kit.errors import WeightsError
from gpt2kit.weights import detect_format, save_model
from gpt2kit.weights.folder import WRITABLE
from helpers import random_model, tiny_config

UNWRITABLE = {("llmc", torch.float16): "fp32 or bf16"}  # llm.c has no fp16 files
IDS = torch.randint(0, 50257, (2, 9), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("fmt", WRITABLE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_each_writable_format_reads_back_with_the_same_logits(tmp_path, fmt, dtype):
    model = random_model(tiny_config(n_positions=32))
    if (fmt, dtype) in UNWRITABLE:
        with pytest.raises(WeightsError, match=UNWRITABLE[fmt, dtype]):
            save_model(model, tmp_path / fmt, fmt=fmt, dtype=dtype)
        return
    folder = save_model(model, tmp_path / fmt, fmt=fmt, dtype=dtype)
    assert detect_format(folder) == fmt
    back = GPT2.from_pretrained(folder, dtype=torch.float32)
    shape = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "inner_dim", "layer_norm_epsilon",
             "tie_word_embeddings")  # dropout rates are training settings most formats do not keep
    assert [getattr(back.config, k) for k in shape] == [getattr(model.config, k) for k in shape]
    with torch.no_grad():
        want, got = model.to(dtype).float()(IDS), back(IDS)  # fp16 files: the model's weights rounded to fp16
    assert torch.equal(got, want)


def largest_file(folder) -> object:
    return max((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("fmt", WRITABLE)
def test_a_truncated_weights_file_of_each_format_is_one_line(tmp_path, fmt):
    folder = save_model(random_model(tiny_config(n_positions=32)), tmp_path / fmt, fmt=fmt)
    weights = largest_file(folder)  # the weights (the vocabulary files are smaller than a tiny model)
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError) as error:
        GPT2.from_pretrained(folder)
    message = str(error.value)
    assert "\n" not in message and str(folder) in message, message
