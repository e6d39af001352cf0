"""The decoder graph written with ONNX Runtime's fused operators: what it holds, its optional
`logits_to_keep`, and what it refuses. Its logits against PyTorch and transformers are checked with
the traced graph's in test_onnx_export.py (parametrized), its decoding in the backend's tests."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from gpt2kit.backends.onnxruntime_backend import OrtDecoder, inference_session
from gpt2kit.export import ExportError, export_onnx
from gpt2kit.export.parity import left_padded_mask
from helpers import random_model, tiny_config


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    return export_onnx(random_model(tiny_config(), seed=4), tmp_path_factory.mktemp("fused") / "out", fused=True)


def test_attention_layer_norms_and_gelu_are_one_operator_each(fused):
    graph = onnx.load(str(fused.model_file)).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("GroupQueryAttention") == 2 and ops.count("FastGelu") == 2
    assert ops.count("SkipLayerNormalization") == 4 and ops.count("LayerNormalization") == 1  # ln_1 of block 0
    assert ops.count("Concat") == 0 and ops.count("Softmax") == 0 and ops.count("Split") == 0
    assert [i.name for i in graph.input][-1] == "logits_to_keep" and fused.fused
    assert fused.parity["passed"] and fused.parity["max_abs_diff"] <= 1e-5


def test_logits_to_keep_gives_the_last_positions(fused):
    session = inference_session(fused.model_file)
    config = tiny_config()
    mask = left_padded_mask(2, 6, (0, 3)).numpy()
    feed = {"input_ids": np.random.default_rng(0).integers(0, 50257, (2, 6)), "attention_mask": mask,
            "position_ids": np.clip(mask.cumsum(-1) - 1, 0, None),
            **{f"past_key_values.{i}.{kv}": np.zeros((2, config.n_head, 0, config.head_dim), np.float32)
               for i in range(config.n_layer) for kv in ("key", "value")}}
    every = session.run(["logits"], feed)[0]
    assert every.shape == (2, 6, 50257)
    for keep, expected in ((1, every[:, -1:]), (4, every[:, -4:]), (0, every), (9, every)):
        got = session.run(["logits"], {**feed, "logits_to_keep": np.array(keep, np.int64)})[0]
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("options", [dict(dtype="fp16"), dict(variant="base"), dict(opset=16)])
def test_refused_where_it_cannot_be_written(tmp_path, options):
    with pytest.raises(ExportError, match="--fused writes the fp32 decoder graph at opset 17 or newer"):
        export_onnx(random_model(tiny_config()), tmp_path / "out", fused=True, **options)
    assert not (tmp_path / "out").exists()


def test_quantized_fused_graph(tmp_path):
    result = export_onnx(random_model(tiny_config(), seed=1), tmp_path / "int8", fused=True, quantize="int8",
                         eval_tokens=200)
    ops = [node.op_type for node in onnx.load(str(result.model_file)).graph.node]
    assert ops.count("MatMulInteger") == 2 * 4 + 1 and ops.count("GroupQueryAttention") == 2
    assert abs(result.parity["quantization"]["perplexity"]["change"]) < 0.05
    assert OrtDecoder(inference_session(result.model_file), tiny_config(), {}, "fp32").past_buffer
