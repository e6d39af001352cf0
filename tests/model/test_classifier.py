"""GPT2Classifier against transformers' GPT2ForSequenceClassification / GPT2ForTokenClassification on the
same random weights (fp32, within 1e-5), with right and left padding, and folders that go both ways."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from gpt2kit import load
from gpt2kit.model import ClassifierConfig, GPT2Classifier
from helpers import hf_config, random_model, tiny_config

transformers = pytest.importorskip("transformers")

PAD = 50256
LABELS = ["law", "prophets", "gospels"]


def randomised(model):
    with torch.no_grad():
        gen = torch.Generator().manual_seed(3)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    return model.eval()


def hf_classifier(cls_name: str = "GPT2ForSequenceClassification"):
    config = hf_config(tiny_config())
    config.num_labels = len(LABELS)
    config.id2label = dict(enumerate(LABELS))
    config.label2id = {label: i for i, label in enumerate(LABELS)}
    config.pad_token_id = PAD
    torch.manual_seed(0)
    return randomised(getattr(transformers, cls_name)(config))


def rows(lengths: list[int], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids (no pad id among them) padded to the longest, and their attention mask."""
    gen = torch.Generator().manual_seed(1)
    T = max(lengths)
    ids = torch.full((len(lengths), T), PAD)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for i, n in enumerate(lengths):
        span = slice(T - n, T) if left else slice(0, n)
        ids[i, span] = torch.randint(0, PAD, (n,), generator=gen)
        mask[i, span] = 1
    return ids, mask


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    hf = hf_classifier()
    folder = tmp_path_factory.mktemp("hf-classifier")
    hf.save_pretrained(folder)
    return hf, GPT2Classifier.from_pretrained(folder).eval()


def test_labels_and_head_read_from_a_transformers_folder(pair):
    hf, ours = pair
    assert ours.labels == tuple(LABELS) and ours.head.pooling == "last" and ours.head.pad_token_id == PAD
    torch.testing.assert_close(ours.score.weight, hf.score.weight, rtol=0, atol=0)


def test_right_padding_matches_transformers(pair):
    hf, ours = pair
    ids, mask = rows([7, 3, 12, 1], left=False)
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask).logits
        torch.testing.assert_close(ours(ids, attention_mask=mask), expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(ours(ids), expected, rtol=0, atol=1e-5)  # padding found by pad id, as transformers


def test_left_padding_gives_each_row_its_unpadded_logits(pair):
    hf, ours = pair
    lengths = [7, 3, 12, 1]
    ids, mask = rows(lengths, left=True)
    with torch.no_grad():
        got = ours(ids, attention_mask=mask)
        # transformers numbers positions 0.. from the first column; given the positions of the real tokens,
        # its logits are those of each row alone
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        torch.testing.assert_close(got, hf(ids, attention_mask=mask, position_ids=positions).logits, rtol=0,
                                   atol=1e-5)
        for i, n in enumerate(lengths):
            alone = hf(ids[i:i + 1, -n:]).logits
            torch.testing.assert_close(got[i:i + 1], alone, rtol=0, atol=1e-5)


def test_saved_classifier_loads_in_transformers_with_the_same_logits(pair, tmp_path):
    _, ours = pair
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.GPT2ForSequenceClassification.from_pretrained(tmp_path / "ours").eval()
    assert back.config.id2label == dict(enumerate(LABELS)) and back.config.pad_token_id == PAD
    ids, mask = rows([5, 9, 2], left=False)
    with torch.no_grad():
        torch.testing.assert_close(back(ids, attention_mask=mask).logits, ours(ids, attention_mask=mask), rtol=0,
                                   atol=1e-5)
    again = GPT2Classifier.from_pretrained(tmp_path / "ours")
    for (name, a), (_, b) in zip(ours.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_token_classification_matches_transformers(tmp_path):
    hf = hf_classifier("GPT2ForTokenClassification")
    hf.save_pretrained(tmp_path / "hf")
    ours = GPT2Classifier.from_pretrained(tmp_path / "hf").eval()
    assert ours.head.pooling == "token"
    ids, mask = rows([6, 10], left=False)
    real = mask.bool()  # padding positions hold nothing (and are numbered differently)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, attention_mask=mask)[real], hf(ids, attention_mask=mask).logits[real],
                                   rtol=0, atol=1e-5)
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.GPT2ForTokenClassification.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, hf(ids).logits, rtol=0, atol=1e-5)


def test_mean_pooling_is_the_mean_of_transformers_hidden_states(pair, tmp_path):
    hf, ours = pair
    mean = GPT2Classifier(ours.transformer, ClassifierConfig(tuple(LABELS), "mean", PAD), ours.score).eval()
    ids, mask = rows([4, 11, 1], left=False)
    with torch.no_grad():
        h = hf.transformer(ids, attention_mask=mask).last_hidden_state  # (B, T, C)
        expected = torch.stack([h[i, :n].mean(0) for i, n in enumerate(mask.sum(1).tolist())]) @ hf.score.weight.T
        torch.testing.assert_close(mean(ids, attention_mask=mask), expected, rtol=0, atol=1e-5)
    mean.save_pretrained(tmp_path / "mean")
    assert GPT2Classifier.from_pretrained(tmp_path / "mean").head.pooling == "mean"


def test_a_language_model_gets_a_new_head_and_says_so(tmp_path, capsys):
    random_model().save_pretrained(tmp_path / "lm")
    model = GPT2Classifier.from_pretrained(tmp_path / "lm", labels=["a", "b"])
    assert "a new last-token classification head for 2 classes (a, b) is initialised" in capsys.readouterr().err
    assert model.score.weight.shape == (2, 64) and model.score.weight.std() < 0.05
    with pytest.raises(Exception, match=r"a language model without a classification head; fine-tune one with "
                                        r"`gpt2kit finetune --task classify"):
        GPT2Classifier.from_pretrained(tmp_path / "lm")


def test_load_knows_the_task_from_the_config(pair, tmp_path):
    _, ours = pair
    ours.save_pretrained(tmp_path / "c")
    loaded = load(tmp_path / "c")
    assert loaded.task == "classify" and isinstance(loaded.model, GPT2Classifier)
    assert load(None).task == "generate"


def test_convert_keeps_the_head_or_refuses(pair, tmp_path):
    from gpt2kit.errors import WeightsError
    from gpt2kit.weights.convert import convert

    _, ours = pair
    ours.save_pretrained(tmp_path / "c")
    convert(tmp_path / "c", tmp_path / "half", dtype=torch.float16)
    assert GPT2Classifier.from_pretrained(tmp_path / "half").labels == tuple(LABELS)
    with safe_open(str(tmp_path / "half" / "model.safetensors"), framework="pt") as f:
        assert f.get_tensor("score.weight").dtype == torch.float16
    with pytest.raises(WeightsError, match="a classifier is written as a Hugging Face folder only, not gguf"):
        convert(tmp_path / "c", tmp_path / "g", dst_format="gguf")
