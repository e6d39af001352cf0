"""`export_onnx`: the graphs ONNX Runtime runs against GPT2 itself, transformers and `gpt2kit.generate`."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest
import torch

from gpt2kit import GPT2, generate
from gpt2kit.backends.onnxruntime_backend import inference_session
from gpt2kit.export import ExportError, export_onnx, onnx_export, parity
from gpt2kit.export.parity import left_padded_mask
from gpt2kit.extras import MissingExtraError
from helpers import hf_random_model, random_model, tiny_config

NAMES_IN = ["input_ids", "attention_mask", "position_ids", "past_key_values.0.key", "past_key_values.0.value",
            "past_key_values.1.key", "past_key_values.1.value"]
NAMES_OUT = ["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"]


@pytest.fixture(scope="module")
def model() -> GPT2:
    return random_model(tiny_config(), seed=4)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """The tiny model's decoder graph, exported once for the tests that only run it."""
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "decoder")


def graph_io(path) -> tuple[list, list]:
    """(name, [dims]) of a graph's inputs and outputs; a dynamic axis by its name."""
    graph = onnx.load(str(path), load_external_data=False).graph

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return [(v.name, dims(v)) for v in graph.input], [(v.name, dims(v)) for v in graph.output]


def test_decoder_names_and_dynamic_axes(exported):
    inputs, outputs = graph_io(exported.model_file)
    assert [n for n, _ in inputs] == NAMES_IN == list(exported.inputs)
    assert [n for n, _ in outputs] == NAMES_OUT == list(exported.outputs)
    shapes = dict(inputs + outputs)
    assert shapes["input_ids"] == shapes["position_ids"] == ["batch", "sequence"]
    assert shapes["attention_mask"] == ["batch", "total_sequence"]
    assert shapes["past_key_values.1.value"] == ["batch", 4, "past_sequence", 16]
    assert shapes["present.0.key"] == ["batch", 4, "total_sequence", 16]
    assert shapes["logits"] == ["batch", "sequence", 50257]


def test_folder_holds_a_model_with_its_report(exported):
    folder = exported.path
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["config.json", "generation_config.json", "merges.txt", "model.onnx", "parity.json",
                     "tokenizer_config.json", "vocab.json"]
    report = json.loads((folder / "parity.json").read_text())
    assert report == exported.parity and report["passed"]
    assert report["max_abs_diff"] <= 1e-4 and report["top1_agreement"] == 1.0
    cases = {(c["batch"], c["past"] > 0, any(c["left_padding"])) for c in report["cases"]}
    assert {(1, False, False), (3, False, True), (3, True, True), (1, True, False)} <= cases
    config = json.loads((folder / "config.json").read_text())
    assert config["n_layer"] == 2 and config["gpt2kit"]["onnx"] == {"file": "model.onnx", "variant": "decoder",
                                                                   "dtype": "fp32", "opset": 17}
    # the tied head is wte itself, not a second copy of it
    graph = onnx.load(str(exported.model_file)).graph
    assert sum(t.dims[0] * t.dims[1] == 50257 * 64 for t in graph.initializer if len(t.dims) == 2) == 1


def greedy_with_session(session, config, prompts: list[list[int]], steps: int) -> list[list[int]]:
    """Greedy decoding on the decoder graph alone: left-padded prefill with an empty past, then one
    token per step with present fed back as past."""
    B, width = len(prompts), max(map(len, prompts))
    ids = np.array([[0] * (width - len(p)) + p for p in prompts], dtype=np.int64)
    mask = np.array([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=np.int64)
    past = {f"past_key_values.{i}.{kv}": np.zeros((B, config.n_head, 0, config.head_dim), np.float32)
            for i in range(config.n_layer) for kv in ("key", "value")}
    positions = np.clip(mask.cumsum(-1) - 1, 0, None)
    out: list[list[int]] = [[] for _ in prompts]
    for _ in range(steps):
        logits, *present = session.run(None, {"input_ids": ids, "attention_mask": mask, "position_ids": positions,
                                              **past})
        nxt = logits[:, -1].argmax(-1)
        for row, token in enumerate(nxt.tolist()):
            out[row].append(token)
        past = dict(zip(past, present, strict=True))
        ids, positions = nxt[:, None], positions[:, -1:] + 1
        mask = np.concatenate([mask, np.ones((B, 1), np.int64)], axis=1)
    return out


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The shipped model (trained: a random one repeats a single token, which a broken cache would too)
    and its exported decoder graph."""
    return GPT2.from_pretrained("default"), export_onnx("default", tmp_path_factory.mktemp("onnx") / "shipped")


@pytest.mark.parametrize("prompts", [[[464, 3290, 318, 257]], [[464, 3290, 318, 257, 1332], [15496], [40, 716, 7]]],
                         ids=["one", "left-padded"])
def test_step_by_step_greedy_matches_generate(shipped, prompts):
    model, exported = shipped
    session = inference_session(exported.model_file)
    expected = generate(model, prompts, max_new_tokens=16, temperature=0, eos_token_id=None)
    assert len({t for row in expected for t in row}) > 4  # not one token repeated
    assert greedy_with_session(session, model.config, prompts, 16) == expected


@pytest.mark.parametrize("fused", [False, True], ids=["traced", "fused"])
def test_decoder_matches_transformers(tmp_path, fused):
    """An independent reference: transformers' GPT-2 on the same weights, with left padding and a past."""
    config = tiny_config(n_layer=2, n_head=2, n_embd=32)
    hf = hf_random_model(config, seed=2)
    hf.save_pretrained(tmp_path / "hf")
    result = export_onnx(tmp_path / "hf", tmp_path / "onnx", fused=fused)
    assert json.loads((tmp_path / "onnx" / "config.json").read_text())["gpt2kit"]["exported_from"].startswith("hf: ")
    session = inference_session(result.model_file)
    ids = torch.randint(0, 50257, (3, 9), generator=torch.Generator().manual_seed(1))
    mask = left_padded_mask(3, 9, (0, 2, 4))
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        cache = hf(ids[:, :6], attention_mask=mask[:, :6], position_ids=positions[:, :6], use_cache=True
                   ).past_key_values
        past = {}
        for i in range(config.n_layer):  # copied now: the next call appends to transformers' cache in place
            k, v = cache[i][:2] if isinstance(cache, tuple) else (cache.layers[i].keys, cache.layers[i].values)
            past[f"past_key_values.{i}.key"], past[f"past_key_values.{i}.value"] = k.numpy().copy(), v.numpy().copy()
        expected = hf(ids[:, 6:], attention_mask=mask, position_ids=positions[:, 6:], past_key_values=cache).logits
    logits = session.run(["logits"], {"input_ids": ids[:, 6:].numpy(), "attention_mask": mask.numpy(),
                                      "position_ids": positions[:, 6:].numpy(), **past})[0]
    assert np.abs(logits - expected.numpy()).max() <= 1e-4


# The four published shapes with one or two layers (and a small vocabulary, which is not part of the shape):
# widths, heads and the context are the real ones.
PRESET_SHAPES = {
    "gpt2": dict(n_layer=2, n_head=12, n_embd=768),
    "gpt2-medium": dict(n_layer=1, n_head=16, n_embd=1024),
    "gpt2-large": dict(n_layer=1, n_head=20, n_embd=1280),
    "gpt2-xl": dict(n_layer=1, n_head=25, n_embd=1600),
}


@pytest.mark.parametrize("fused", [False, True], ids=["traced", "fused"])
@pytest.mark.parametrize("preset", PRESET_SHAPES)
def test_parity_at_the_presets_widths(preset, tmp_path, fused):
    config = tiny_config(**PRESET_SHAPES[preset], n_positions=1024, vocab_size=2048)
    result = export_onnx(random_model(config, seed=1), tmp_path / preset, fused=fused)
    assert result.parity["passed"] and result.parity["max_abs_diff"] <= 1e-4
    assert result.parity["max_abs_present_diff"] <= 1e-4 and result.parity["top1_agreement"] == 1.0


def test_base_variant_gives_gpt2s_hidden_states(model, tmp_path):
    result = export_onnx(model, tmp_path / "base", variant="base")
    inputs, outputs = graph_io(result.model_file)
    assert inputs == [("input_ids", ["batch", "sequence"])]
    assert outputs == [("last_hidden_state", ["batch", "sequence", 64]),
                       ("present.0", [2, "batch", 4, "sequence", 16]), ("present.1", [2, "batch", 4, "sequence", 16])]
    session = inference_session(result.model_file)
    ids = torch.randint(0, 50257, (2, 11), generator=torch.Generator().manual_seed(5))
    cache = model.new_cache(2, 11)
    with torch.no_grad():
        expected = model.hidden_states(ids, cache=cache)
    hidden, *present = session.run(None, {"input_ids": ids.numpy()})
    assert np.abs(hidden - expected.numpy()).max() <= 1e-4
    for layer, stacked in enumerate(present):
        assert np.abs(stacked - cache.kv[layer].numpy()).max() <= 1e-4


@pytest.mark.parametrize(("options", "dtype", "fused"), [
    (dict(scale_attn_weights=False, scale_attn_by_inverse_layer_idx=True), "fp32", False),
    (dict(scale_attn_weights=False, scale_attn_by_inverse_layer_idx=True), "fp32", True),
    (dict(scale_attn_by_inverse_layer_idx=True), "fp32", True),
    (dict(tie_word_embeddings=False), "fp32", False),
    (dict(tie_word_embeddings=False), "fp32", True),
    (dict(reorder_and_upcast_attn=True), "fp16", False),  # fp32 scores inside an fp16 graph
    (dict(reorder_and_upcast_attn=True), "fp32", True),  # fp32 throughout: the same
], ids=["scaling", "scaling-fused", "inverse-layer-fused", "untied", "untied-fused", "upcast", "upcast-fused"])
def test_transformers_options(tmp_path, options, dtype, fused):
    result = export_onnx(random_model(tiny_config(**options), seed=2), tmp_path / "out", dtype=dtype, fused=fused)
    assert result.parity["passed"] and result.parity["top1_agreement"] == 1.0
    if dtype == "fp32":
        assert result.parity["max_abs_diff"] <= 1e-4


@pytest.mark.parametrize("variant", ["decoder", "base"])
def test_a_context_shorter_than_the_checks(tmp_path, variant):
    result = export_onnx(random_model(tiny_config(n_positions=4)), tmp_path / "out", variant=variant)
    assert result.parity["passed"] and max(c["past"] + c["new"] for c in result.parity["cases"]) <= 4


def test_fp16_graph_computes_in_fp16(model, tmp_path):
    result = export_onnx(model, tmp_path / "fp16", dtype="fp16")
    assert result.parity["passed"] and result.parity["top1_agreement"] == 1.0
    graph = onnx.load(str(result.model_file)).graph
    fp16 = onnx.TensorProto.FLOAT16
    assert {v.type.tensor_type.elem_type for v in graph.output} == {fp16}
    assert {t.data_type for t in graph.initializer if len(t.dims) == 2} == {fp16}


def test_weights_beside_the_graph_past_the_limit_and_overwrite(model, tmp_path, monkeypatch):
    out = tmp_path / "big"
    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 0)
    result = export_onnx(model, out)
    assert result.external_data and (out / "model.onnx.data").stat().st_size > 50257 * 64 * 4
    assert (out / "model.onnx").stat().st_size < 1_000_000 and result.parity["passed"]
    monkeypatch.undo()
    (out / "notes.txt").write_text("mine")
    result = export_onnx(model, out, overwrite=True)
    assert not result.external_data and not (out / "model.onnx.data").exists()  # no stale weights left
    assert (out / "notes.txt").read_text() == "mine"  # the user's own files stay
    assert [p.name for p in tmp_path.iterdir()] == ["big"]  # no temporary folder left


def test_failed_parity_writes_nothing(model, tmp_path, monkeypatch):
    monkeypatch.setitem(parity.TOLERANCE, "fp32", 0.0)
    with pytest.raises(ExportError, match=r"differ from PyTorch's by up to .* nothing was written$"):
        export_onnx(model, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_non_empty_out_needs_overwrite(model, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(ExportError, match=r"out: already exists and is not empty \(pass --overwrite"):
        export_onnx(model, tmp_path / "out")
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportError, match="file: exists and is not a folder"):
        export_onnx(model, tmp_path / "file", overwrite=True)


@pytest.mark.parametrize(("opset", "message"), [
    (13, "opset 13 is too old for GPT-2's graph: its attention (scaled_dot_product_attention) needs opset 14 or "
         "newer (default 17)"),
    (21, "opset 21 is newer than PyTorch's ONNX exporter writes (up to 20; default 17)"),
])
def test_opset_out_of_range(model, tmp_path, opset, message):
    with pytest.raises(ExportError) as err:
        export_onnx(model, tmp_path / "out", opset=opset)
    assert str(err.value) == message
    assert not (tmp_path / "out").exists()


def test_lowest_opset_works(model, tmp_path):
    result = export_onnx(model, tmp_path / "out", opset=14)
    assert result.parity["passed"] and result.opset == 14
    assert onnx.load(str(result.model_file), load_external_data=False).opset_import[0].version == 14


@pytest.mark.parametrize("module", ["onnx", "onnxruntime"])
def test_missing_onnx_names_the_extra(model, tmp_path, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # `import onnx` now fails
    wanted = rf"needs {module}, which is not installed: pip install 'gpt2kit\[onnx\]'$"
    with pytest.raises(MissingExtraError, match=wanted):
        export_onnx(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_caller_model_is_left_as_it_was(tmp_path):
    model = random_model(tiny_config(n_layer=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "out", dtype="fp16")
    assert model.dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_lora_adapters_are_folded_in(tmp_path):
    from gpt2kit.training.lora import add_lora

    model = random_model(tiny_config(n_layer=1))
    add_lora(model, rank=2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.5)
    result = export_onnx(model, tmp_path / "out")
    assert result.parity["passed"]
    session = inference_session(result.model_file)
    ids = torch.tensor([[464, 3290, 318]])
    with torch.no_grad():
        expected = model(ids)  # with its adapters
    feed = {"input_ids": ids.numpy(), "attention_mask": np.ones((1, 3), np.int64),
            "position_ids": np.arange(3)[None], **{n: np.zeros((1, 4, 0, 16), np.float32) for n in NAMES_IN[3:5]}}
    assert np.abs(session.run(["logits"], feed)[0] - expected.numpy()).max() <= 1e-4
