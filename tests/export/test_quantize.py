"""`export_onnx(..., quantize="int8")`: int8 matrix weights, and their cost in perplexity measured on
the shipped model's held-out text (a trained model: random weights say nothing about quantization)."""

from __future__ import annotations

import json

import onnx
import pytest

import gpt2kit
from gpt2kit import generate, perplexity
from gpt2kit.cli.main import main
from gpt2kit.evaluation import heldout_text
from gpt2kit.export import ExportError, export_onnx
from helpers import random_model, tiny_config

TOKENS = 3000  # of the held-out text: enough for a stable perplexity, quick to run twice


@pytest.fixture(scope="module")
def shipped_int8(tmp_path_factory):
    return export_onnx("default", tmp_path_factory.mktemp("int8") / "model", quantize="int8", eval_tokens=TOKENS)


def test_matrix_weights_are_int8(shipped_int8):
    graph = onnx.load(str(shipped_int8.model_file)).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("MatMulInteger") == 6 * 4 + 1  # four projections per block, and the LM head
    assert "MatMul" not in ops or all(  # what is left in fp32 multiplies activations (attention), no weights
        node.input[1] not in {t.name for t in graph.initializer} for node in graph.node if node.op_type == "MatMul")
    config = json.loads((shipped_int8.path / "config.json").read_text())
    assert config["gpt2kit"]["onnx"]["quantize"] == "int8" and shipped_int8.quantize == "int8"


def test_perplexity_within_one_percent_of_fp32(shipped_int8):
    report = json.loads((shipped_int8.path / "parity.json").read_text())
    assert report["passed"]  # the fp32 graph, checked before it was quantized
    ppl = report["quantization"]["perplexity"]
    assert ppl["tokens"] == TOKENS - 1 and ppl["text"].startswith("the King James Bible's held-out end")
    # the fp32 graph scores what PyTorch scores
    torch_model = gpt2kit.load("default")
    expected = perplexity(torch_model.model, heldout_text(), tokenizer=torch_model.tokenizer, max_tokens=TOKENS)
    assert ppl["fp32"] == pytest.approx(expected.value, rel=1e-5)
    assert abs(ppl["change"]) < 0.01  # this model: -0.04% on the whole held-out text
    assert report["quantization"]["against_pytorch"]["top1_agreement"] >= 0.9


def test_the_int8_folder_runs_on_the_onnxruntime_backend(shipped_int8):
    int8 = gpt2kit.load(shipped_int8.path, backend="onnxruntime")
    again = perplexity(int8.model, heldout_text(), tokenizer=int8.tokenizer, max_tokens=TOKENS)
    report = json.loads((shipped_int8.path / "parity.json").read_text())["quantization"]["perplexity"]
    assert again.value == pytest.approx(report["int8"], rel=1e-6)
    ids = int8.tokenizer.encode("And the LORD said")
    rows = generate(int8.model, [ids, ids[:2]], max_new_tokens=12, temperature=0)
    assert [len(r) for r in rows] == [12, 12]


@pytest.mark.parametrize("options, message", [
    (dict(quantize="int4"), "unknown quantization 'int4'; known: int8"),
    (dict(quantize="int8", dtype="fp16"), "quantizes an fp32 graph's weights: leave out --dtype fp16"),
    (dict(quantize="int8", variant="base"), "needs --variant decoder"),
    (dict(quantize="int8", eval_text="no-such-file.txt"), "--eval-text no-such-file.txt: no such file"),
])
def test_refused_before_any_work(tmp_path, options, message):
    with pytest.raises(ExportError, match=message.replace("(", r"\(").replace("|", r"\|")):
        export_onnx(random_model(tiny_config()), tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_cli_prints_both_perplexities(tmp_path, capsys):
    random_model(tiny_config()).save_pretrained(tmp_path / "tiny")
    text = tmp_path / "text.txt"
    text.write_text(heldout_text()[:3000])
    assert main(["export", "onnx", "--model", str(tmp_path / "tiny"), "--out", str(tmp_path / "o"), "--fused",
                 "--quantize", "int8", "--eval-text", str(text), "--eval-tokens", "300"]) == 0
    first, *_, last = capsys.readouterr().out.splitlines()
    assert first == f"wrote {tmp_path / 'o' / 'model.onnx'} (decoder, fused, fp32, opset 17)"
    assert last.startswith(f"int8 weights: perplexity on {text} (299 tokens): fp32 ")
    assert "-> int8 " in last and "top-1 agreement" in last
    assert main(["info", str(tmp_path / "o")]) == 0
    info = capsys.readouterr().out
    assert "format      onnx\n" in info and "dtype       fp32 (int8 matrix weights)\n" in info
    assert "graph       ONNX decoder (fused operators), opset 17 (run with --backend onnxruntime)\n" in info
    assert main(["export", "onnx", "--model", str(tmp_path / "tiny"), "--out", str(tmp_path / "p"),
                 "--quantize", "int8", "--eval-text", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"gpt2kit: error: --eval-text {tmp_path}: is a folder; give a UTF-8 text file\n"
