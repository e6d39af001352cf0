"""perplexity() against transformers' own loss on the same random weights: a text within the context
(one forward pass, transformers' mean cross-entropy) and one past it, which transformers runs with
the strided recipe of its perplexity guide (windows of the context, `stride` apart, labels -100 on
the tokens the previous window already counted), for strides of the whole, half and a quarter of
the context, on both backends."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gpt2kit import Tokenizer, perplexity
from gpt2kit.evaluation import heldout_text
from gpt2kit.evaluation.perplexity import perplexity_of_data
from gpt2kit.evaluation.scoring import ScoringError
from helpers import hf_pair, tiny_config


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return hf_pair(tmp_path_factory.mktemp("ppl"), tiny_config(n_positions=32), seed=3)


def hf_strided_nll(hf, ids: list[int], context: int, stride: int | None = None) -> tuple[float, int]:
    """(mean negative log-likelihood, tokens counted) of ids, the way transformers' guide computes
    it; the tokens a window counts are its shifted labels that are not -100 (the guide's
    `num_valid_tokens - batch_size` is one short on every window after the first when stride <
    context, which weighs windows slightly wrongly)."""
    seq = torch.tensor([ids])
    total, count, previous_end = 0.0, 0, 0
    for begin in range(0, len(ids), stride or context // 2):
        end = min(begin + context, len(ids))
        labels = seq[:, begin:end].clone()
        labels[:, :-(end - previous_end)] = -100  # counted by the window before
        with torch.no_grad():
            loss = hf(seq[:, begin:end], labels=labels).loss  # mean over the labels that count
        counted = int((labels[:, 1:] != -100).sum())
        total, count, previous_end = total + loss.item() * counted, count + counted, end
        if end == len(ids):
            break
    return total / count, count


def test_within_the_context_is_transformers_loss(pair):
    hf, ours = pair
    ids = Tokenizer.from_pretrained().encode("In the beginning God created the heaven and the earth.")
    with torch.no_grad():
        expected = hf(torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    result = perplexity(ours, ids)
    assert result.tokens == len(ids) - 1
    assert result.nll == pytest.approx(expected, abs=1e-5)
    assert result.value == pytest.approx(math.exp(expected), rel=1e-5)


def test_past_the_context_is_transformers_strided_recipe(pair):
    hf, ours = pair
    tok = Tokenizer.from_pretrained()
    ids = tok.encode(heldout_text()[:1500])[:150]  # about 5 contexts of 32
    assert len(ids) == 150
    result = perplexity(ours, heldout_text()[:1500], tokenizer=tok, max_tokens=150)
    assert result.tokens == 149
    assert result.nll == pytest.approx(hf_strided_nll(hf, ids, 32)[0], abs=1e-5)


@pytest.mark.parametrize("stride", [32, 16, 8])
@pytest.mark.parametrize("length", [150, 20], ids=["past-the-context", "within-one-window"])
def test_every_stride_is_transformers_strided_recipe(pair, stride, length):
    hf, ours = pair
    tok = Tokenizer.from_pretrained()
    ids = tok.encode(heldout_text()[:1500])[:length]
    expected, counted = hf_strided_nll(hf, ids, 32, stride)
    result = perplexity(ours, ids, stride=stride)
    assert result.tokens == counted
    assert result.nll == pytest.approx(expected, rel=1e-4)


def test_onnxruntime_backend_is_transformers_strided_recipe(pair, tmp_path):
    pytest.importorskip("onnxruntime")
    import gpt2kit
    from gpt2kit.export import export_onnx

    hf, ours = pair
    ours.save_pretrained(tmp_path / "model")
    export_onnx(tmp_path / "model", tmp_path / "onnx")
    ort = gpt2kit.load(tmp_path / "onnx", backend="onnxruntime")
    ids = Tokenizer.from_pretrained().encode(heldout_text()[:1500])[:150]
    for stride in (32, 8):
        expected, counted = hf_strided_nll(hf, ids, 32, stride)
        result = perplexity(ort.model, ids, stride=stride)
        assert result.tokens == counted and result.nll == pytest.approx(expected, rel=1e-4)


def test_data_in_every_format_finetune_reads_and_bits_per_byte(pair, tmp_path):
    """Documents joined by <|endoftext|>, as training reads them; bits per byte over the UTF-8 bytes
    of the counted tokens (the first token and the separators carry none)."""
    hf, ours = pair
    tok = Tokenizer.from_pretrained()
    docs = [heldout_text()[:400], "Grüße, naïve café — ünïcödé text.", heldout_text()[400:900]]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"body": d}) + "\n" for d in docs), encoding="utf-8")
    ids = [i for d in docs for i in [*tok.encode(d), tok.eot_id]]
    result = perplexity_of_data(ours, tok, tmp_path / "docs.jsonl", text_column="body", cache_dir=tmp_path / "cache",
                                progress=False)
    expected, counted = hf_strided_nll(hf, ids, 32)
    assert result.tokens == counted == len(ids) - 1
    assert result.nll == pytest.approx(expected, rel=1e-4)
    size = len("".join(docs).encode("utf-8")) - len(tok.decode_bytes(ids[:1]))
    assert result.bytes == size
    assert result.bits_per_byte == pytest.approx(expected * counted / math.log(2) / size, rel=1e-4)
    again = perplexity_of_data(ours, tok, tmp_path / "docs.jsonl", text_column="body", max_tokens=40,
                               cache_dir=tmp_path / "cache", progress=False)
    assert again.tokens == 39 and again.nll == pytest.approx(hf_strided_nll(hf, ids[:40], 32)[0], rel=1e-4)


def test_heldout_text_is_the_shipped_models_validation_split():
    ids = Tokenizer.from_pretrained().encode(heldout_text())
    assert len(ids) == 20_491  # the last 2% of the 1,024,544 tokens it trained on (--val-fraction 0.02)
    assert heldout_text().rstrip().endswith("The grace of our Lord Jesus Christ be with you all. Amen.")


def test_bad_input(pair):
    _, ours = pair
    with pytest.raises(ScoringError, match="needs its tokenizer"):
        perplexity(ours, "text without a tokenizer")
    with pytest.raises(ScoringError, match="at least 2 tokens"):
        perplexity(ours, [464])
    with pytest.raises(ScoringError, match=r"stride must be an integer in 1..32"):
        perplexity(ours, [464, 465, 466], stride=33)
