"""Model folders: gpt2kit <-> transformers in both directions, and every way a folder can be broken."""

from __future__ import annotations

import json
import os

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from gpt2kit import GPT2, Tokenizer
from gpt2kit.errors import ConfigError, ModelNotFoundError, WeightsError
from gpt2kit.weights import read_model
from helpers import hf_random_model, random_model, tiny_config

IDS = torch.randint(0, 50257, (2, 24), generator=torch.Generator().manual_seed(0))


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        out = model(IDS)
    return getattr(out, "logits", out)


def test_transformers_loads_what_gpt2kit_saved(tmp_path):
    ours = random_model(tiny_config(n_layer=3, n_head=2, n_embd=32))
    ours.save_pretrained(tmp_path / "m")
    names = {p.name for p in (tmp_path / "m").iterdir()}
    assert names == {"config.json", "model.safetensors", "generation_config.json", "vocab.json", "merges.txt",
                     "tokenizer_config.json"}
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "m").eval()
    assert (logits(hf) - logits(ours)).abs().max() <= 1e-4
    # the tokenizer files are transformers' too
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "m")
    text = "Hello, world! It's 2026 — naïve café 👍"
    assert hf_tok(text)["input_ids"] == Tokenizer.from_pretrained(tmp_path / "m").encode(text)


def test_gpt2kit_loads_what_transformers_saved(tmp_path):
    hf = hf_random_model(tiny_config())
    hf.save_pretrained(tmp_path / "hf")
    ours = GPT2.from_pretrained(tmp_path / "hf")
    assert (logits(hf) - logits(ours)).abs().max() <= 1e-4


def test_reads_pytorch_model_bin_base_model_and_shards(tmp_path):
    hf = hf_random_model(tiny_config())
    expected = logits(hf)
    # pytorch_model.bin (pickled state dict, loaded with weights_only=True)
    (tmp_path / "bin").mkdir()
    hf.config.save_pretrained(tmp_path / "bin")
    torch.save(hf.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    assert (logits(GPT2.from_pretrained(tmp_path / "bin")) - expected).abs().max() <= 1e-4
    # GPT2Model (no "transformer." prefix), as the published hub checkpoints are stored
    hf.transformer.save_pretrained(tmp_path / "base")
    assert (logits(GPT2.from_pretrained(tmp_path / "base")) - expected).abs().max() <= 1e-4
    # sharded safetensors
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="2MB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    assert (logits(GPT2.from_pretrained(tmp_path / "sharded")) - expected).abs().max() <= 1e-4


def test_dtype_and_metadata_survive(tmp_path):
    model = random_model()
    model.save_pretrained(tmp_path / "m", metadata={"origin": "test"})
    loaded, info = read_model(tmp_path / "m", dtype=torch.bfloat16)
    assert loaded.dtype == torch.bfloat16
    assert info.metadata == {"origin": "test"} and info.format == "hf" and info.path == tmp_path / "m"
    again = GPT2.from_pretrained(tmp_path / "m")
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values(), strict=True))


def test_save_over_existing_folder_keeps_other_files(tmp_path):
    random_model(seed=1).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "notes.txt").write_text("mine")
    model = random_model(seed=2)
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "notes.txt").read_text() == "mine"
    assert (logits(GPT2.from_pretrained(tmp_path / "m")) - logits(model)).abs().max() == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


# ---- broken folders: one clear error each -------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    random_model().save_pretrained(tmp_path / "m")
    return tmp_path / "m"


def test_missing_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        GPT2.from_pretrained(tmp_path / "absent")


def test_missing_config(saved):
    (saved / "config.json").unlink()
    with pytest.raises(WeightsError, match="no config.json"):
        GPT2.from_pretrained(saved)


@pytest.mark.parametrize(
    "content,message",
    [("{not json", "malformed JSON"), ('{"model_type": "gpt2", "n_layer": 2}', "missing required key"),
     ('{"model_type": "bert", "n_embd": 8, "n_layer": 1, "n_head": 1}', "not 'gpt2'"),
     ('{"n_embd": 10, "n_layer": 1, "n_head": 3}', "divisible"), ("[1, 2]", "expected a JSON object")],
)
def test_malformed_config(saved, content, message):
    (saved / "config.json").write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        GPT2.from_pretrained(saved)
    assert "config.json" in str(err.value)


def test_wrong_shape(saved):
    path = saved / "model.safetensors"
    tensors = load_file(path)
    tensors["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(64, 100)
    save_file(tensors, path)
    with pytest.raises(WeightsError, match=r"'transformer.h.1.mlp.c_fc.weight' has shape \(64, 100\).*\(64, 256\)"):
        GPT2.from_pretrained(saved)


def test_missing_tensor(saved):
    path = saved / "model.safetensors"
    tensors = load_file(path)
    del tensors["transformer.ln_f.bias"]
    save_file(tensors, path)
    with pytest.raises(WeightsError, match="missing tensor 'transformer.ln_f.bias'"):
        GPT2.from_pretrained(saved)


def test_unexpected_tensor(saved):
    path = saved / "model.safetensors"
    tensors = load_file(path)
    tensors["transformer.h.7.attn.c_attn.weight"] = torch.zeros(1)
    save_file(tensors, path)
    with pytest.raises(WeightsError, match="unexpected tensor"):
        GPT2.from_pretrained(saved)


@pytest.mark.parametrize("keep", [0.5, 0.0001])
def test_truncated_safetensors(saved, keep):
    path = saved / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        GPT2.from_pretrained(saved)


def test_missing_weights(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match="no weights file"):
        GPT2.from_pretrained(saved)


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_objects_are_refused_not_run(saved, tmp_path):
    marker = tmp_path / "pwned"
    (saved / "model.safetensors").unlink()
    torch.save({"transformer.wte.weight": Exploit(marker)}, saved / "pytorch_model.bin")
    with pytest.raises(WeightsError, match="refused to unpickle"):
        GPT2.from_pretrained(saved)
    assert not marker.exists()


def test_truncated_bin(saved):
    (saved / "model.safetensors").unlink()
    torch.save(random_model().state_dict(), saved / "pytorch_model.bin")
    data = (saved / "pytorch_model.bin").read_bytes()
    (saved / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        GPT2.from_pretrained(saved)


def test_unknown_name():
    with pytest.raises(ModelNotFoundError, match="not a published model name"):
        GPT2.from_pretrained("gpt5-ultra")


def test_config_round_trips_through_both_formats(tmp_path):
    config = tiny_config(n_layer=3)
    config.save(tmp_path / "config.json")
    assert type(config).from_file(tmp_path / "config.json") == config
    config.save(tmp_path / "hparams.json")
    assert json.loads((tmp_path / "hparams.json").read_text()) == {
        "n_vocab": 50257, "n_ctx": 64, "n_embd": 64, "n_head": 4, "n_layer": 3}
    back = type(config).from_file(tmp_path / "hparams.json")
    assert (back.n_layer, back.n_embd, back.n_positions) == (3, 64, 64)


def test_generation_config_overrides_survive_a_save(saved, tmp_path):
    (saved / "generation_config.json").write_text(json.dumps({"eos_token_id": [13, 50256], "pad_token_id": 0}))
    model = GPT2.from_pretrained(saved)
    assert model.generation_config == {"eos_token_id": [13, 50256], "pad_token_id": 0}
    model.save_pretrained(tmp_path / "again")
    written = json.loads((tmp_path / "again" / "generation_config.json").read_text())
    assert written["eos_token_id"] == [13, 50256] and written["pad_token_id"] == 0
    assert GPT2.from_pretrained(tmp_path / "again").generation_config == written
