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
