"""GGUF: a file llama.cpp's converter wrote reads with the reference logits, gpt2kit writes what that
converter writes, Q8_0 reads within its precision, llama.cpp runs gpt2kit's file, and bad files are one line."""

from __future__ import annotations

import importlib.util
import json
import lzma
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import transformers

from gpt2kit import GPT2, generate
from gpt2kit.errors import WeightsError
from gpt2kit.tokenizer import Tokenizer
from gpt2kit.weights import detect_format, save_model
from gpt2kit.weights.gguf_file import F32, Q8_0, GGUFFile, write_gguf
from gpt2kit.weights.info import describe_model
from gpt2kit.weights.layouts import GGUF
from helpers import random_model, tiny_config

gguf = pytest.importorskip("gguf")
FIXTURES = Path(__file__).parents[1] / "fixtures" / "gguf"


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """tiny-f16.gguf as llama.cpp's convert_hf_to_gguf.py wrote it (tests/fixtures/gguf/make_fixture.py)."""
    path = tmp_path_factory.mktemp("gguf") / "tiny-f16.gguf"
    path.write_bytes(lzma.decompress((FIXTURES / "tiny-f16.gguf.xz").read_bytes()))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> transformers.GPT2LMHeadModel:
    """The transformers model the converter read (fp16 weights, as the GGUF holds them)."""
    folder = tmp_path_factory.mktemp("hf")
    (folder / "model.safetensors").write_bytes(lzma.decompress((FIXTURES / "tiny-hf.safetensors.xz").read_bytes()))
    (folder / "config.json").write_text((FIXTURES / "tiny-config.json").read_text())
    return transformers.GPT2LMHeadModel.from_pretrained(folder, dtype=torch.float32).eval()


IDS = torch.randint(0, 50257, (2, 8), generator=torch.Generator().manual_seed(0))


def test_the_converters_file_reads_with_the_reference_logits(converted, reference):
    assert detect_format(converted) == detect_format(converted.parent) == "gguf"
    ours = GPT2.from_pretrained(converted, dtype=torch.float32)
    assert ours.config.n_positions == 8 and ours.config.tie_word_embeddings
    with torch.no_grad():
        assert (ours(IDS) - reference(IDS).logits).abs().max() <= 1e-5
    info = describe_model(converted)
    assert info["format"] == "gguf" and info["dtype"] == "fp16, fp32" and info["config"] == ours.config


def contents(path: Path) -> tuple[dict, dict]:
    """Metadata and tensors (type, shape, bytes) as the gguf package (llama.cpp's own reader) sees them."""
    reader = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    return fields, {t.name: (t.tensor_type.name, [int(n) for n in t.shape], np.asarray(t.data).tobytes())
                    for t in reader.tensors}


def kinds(path: Path) -> dict[str, str]:
    return {name: info.kind for name, info in GGUFFile(path).tensors.items()}


def test_gpt2kit_writes_what_the_converter_writes(converted, tmp_path):
    model = GPT2.from_pretrained(converted, dtype=torch.float16)
    written = save_model(model, tmp_path / "out", fmt="gguf") / "model.gguf"
    (theirs, their_tensors), (ours, our_tensors) = contents(converted), contents(written)
    for key in ("general.name", "general.size_label"):  # names of the model, not of its contents
        theirs.pop(key, None), ours.pop(key, None)
    assert ours == theirs
    assert our_tensors == their_tensors  # names, types, shapes and bytes (their order in the file is free)


def test_an_untied_head_is_written_and_read(tmp_path):
    model = random_model(tiny_config(tie_word_embeddings=False))
    path = save_model(model, tmp_path / "untied", fmt="gguf") / "model.gguf"
    assert "output.weight" in GGUFFile(path).tensors
    back = GPT2.from_pretrained(path)
    assert not back.config.tie_word_embeddings
    with torch.no_grad():
        assert torch.equal(back(IDS), model(IDS))


def quantized_copy(model: GPT2, dst: Path) -> None:
    """The model's hyperparameters and weights (no tokenizer: GPT-2's is assumed) with its matrices
    in Q8_0, written and quantized by the gguf package (llama.cpp's reference implementation)."""
    writer = gguf.GGUFWriter(dst, "gpt2")
    c = model.config
    writer.add_block_count(c.n_layer), writer.add_context_length(c.n_positions), writer.add_head_count(c.n_head)
    writer.add_embedding_length(c.n_embd), writer.add_layer_norm_eps(c.layer_norm_epsilon)
    for name, tensor in GGUF.export(model.state_dict()).items():
        data = tensor().numpy()
        if data.ndim == 2 and name != "position_embd.weight":
            q = gguf.quants.quantize(data.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_q8_0_is_dequantized_within_its_precision(tmp_path):
    model = random_model(tiny_config(n_embd=64))
    quantized_copy(model, tmp_path / "q8.gguf")
    assert set(kinds(tmp_path / "q8.gguf").values()) == {Q8_0, F32}
    back = GPT2.from_pretrained(tmp_path / "q8.gguf")
    assert back.dtype == torch.float32
    with torch.no_grad():
        want, got = model(IDS), back(IDS)
    # 8-bit weights with a scale per 32 values: logits within 2% of their spread
    assert (got - want).abs().max() <= 0.02 * (want.max() - want.min())
    assert describe_model(tmp_path / "q8.gguf")["dtype"] == "fp32, q8_0"


def test_q8_0_is_written_as_ggml_quantizes(tmp_path):
    model = random_model(tiny_config(n_embd=64))
    path = save_model(model, tmp_path / "q8", fmt="gguf", quantize="q8_0") / "model.gguf"
    reader = gguf.GGUFReader(path)
    assert reader.fields["general.file_type"].contents() == 7  # LLAMA_FTYPE_MOSTLY_Q8_0
    state = {GGUF.file_name(k): v for k, v in model.state_dict().items()}
    for t in reader.tensors:
        if t.tensor_type == gguf.GGMLQuantizationType.Q8_0:  # the same bytes as the gguf package's quantizer
            want = gguf.quants.quantize(state[t.name].numpy(), gguf.GGMLQuantizationType.Q8_0)
            assert np.asarray(t.data).tobytes() == want.tobytes(), t.name
    assert {t.name for t in reader.tensors if t.tensor_type == gguf.GGMLQuantizationType.Q8_0} == {
        n for n, v in state.items() if v.dim() == 2 and n != "position_embd.weight"}
    with pytest.raises(WeightsError, match="width 16 is not a multiple of 32"):
        save_model(random_model(tiny_config(n_embd=16, n_head=2)), tmp_path / "narrow", fmt="gguf", quantize="q8_0")
    with pytest.raises(WeightsError, match="q8_0 is a GGUF type: the hf format"):
        save_model(model, tmp_path / "hf", quantize="q8_0")


def test_bad_files_are_one_line(tmp_path, converted):
    data = converted.read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="cut.gguf: damaged or truncated GGUF file"):
        GPT2.from_pretrained(tmp_path / "cut.gguf")
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(WeightsError, match="empty.gguf: "):
        GPT2.from_pretrained(tmp_path / "empty.gguf")
    writer = gguf.GGUFWriter(tmp_path / "llama.gguf", "llama")
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    with pytest.raises(WeightsError, match="architecture 'llama'; gpt2kit reads GPT-2 models"):
        GPT2.from_pretrained(tmp_path / "llama.gguf")


def test_a_foreign_vocabulary_is_refused(tmp_path):
    tokenizer = Tokenizer.from_pretrained()
    vocab = json.loads(tokenizer.vocab_file.read_text())
    (tmp_path / "vocab.json").write_text(json.dumps({"x" + t: i for t, i in vocab.items()}))
    other = SimpleNamespace(vocab_file=tmp_path / "vocab.json", merges_file=tokenizer.merges_file)
    model = random_model(tiny_config(n_embd=32))
    (tmp_path / "m").mkdir()
    write_gguf(model, model.state_dict(), tmp_path / "m", other)
    with pytest.raises(WeightsError, match="is not GPT-2's byte-level BPE vocabulary"):
        GPT2.from_pretrained(tmp_path / "m")


def test_options_llama_cpp_cannot_run_are_refused(tmp_path):
    with pytest.raises(WeightsError, match="cannot hold scale_attn_by_inverse_layer_idx"):
        save_model(random_model(tiny_config(scale_attn_by_inverse_layer_idx=True)), tmp_path / "x", fmt="gguf")
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                    reason="llama-cpp-python is not installed (pip install llama-cpp-python: built from source)")
def test_llama_cpp_runs_gpt2kits_file_with_the_same_greedy_tokens(tmp_path):
    import llama_cpp

    import gpt2kit

    loaded = gpt2kit.load("default")
    path = save_model(loaded.model, tmp_path / "shipped", fmt="gguf") / "model.gguf"
    prompt = loaded.tokenizer.encode("And God said")
    ours = generate(loaded.model, prompt, max_new_tokens=24, do_sample=False)[0]
    llm = llama_cpp.Llama(str(path), n_ctx=64, n_threads=2, verbose=False)
    theirs = []
    for token in llm.generate(prompt, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
        theirs.append(token)
        if len(theirs) == len(ours):
            break
    assert theirs == ours
    assert json.loads(json.dumps(llm.metadata))["general.architecture"] == "gpt2"
