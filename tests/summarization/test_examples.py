"""Summarization examples as the two published recipes build them, the summary-only loss, and a tiny
model trained through the same Trainer (`task="summarization"`) that then writes its summaries back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gpt2kit import GPT2, Tokenizer, generate
from gpt2kit.data import Batch, ExampleSampler, collate
from gpt2kit.data.articles import Article, read_articles
from gpt2kit.summarization import SummarizationError, recipe
from gpt2kit.summarization.examples import article_examples
from gpt2kit.training import TrainConfig, Trainer
from gpt2kit.training.objectives import LanguageModeling
from helpers import tiny_config

CNNDM = Path(__file__).parents[1] / "fixtures" / "cnndm"
TOK = Tokenizer.from_pretrained()
ARTICLE = Article("x", "First line of the story.\nSecond line, with more.", ("One highlight .", "Another one ."))


def counted(example) -> list[int]:
    _, labels = example.row()
    return [t for t in labels if t != -100]


def test_mindspore_recipe():
    (example,) = article_examples(ARTICLE, TOK, recipe("mindspore"), seq_len=128)
    text = "First line of the story. Second line, with more. TL;DR: One highlight . Another one ."
    assert example.tokens == [*TOK.encode(text), TOK.eot_id]  # parts tokenized apart = the whole text tokenized
    assert counted(example) == [*TOK.encode(" One highlight . Another one ."), TOK.eot_id]


def test_tf2_recipe_one_random_highlight_an_epoch():
    variants = article_examples(ARTICLE, TOK, recipe("tf2"), seq_len=128)
    texts = [TOK.decode(v.tokens) for v in variants]
    assert texts == ["First line of the story.\nSecond line, with more.\nTL;DR:\nOne highlight .<|endoftext|>",
                     "First line of the story.\nSecond line, with more.\nTL;DR:\nAnother one .<|endoftext|>"]
    assert variants[1].tokens == [*TOK.encode(texts[1].removesuffix("<|endoftext|>")), TOK.eot_id]
    sampler = ExampleSampler([variants], batch_size=1, seed=0, pad_id=TOK.eot_id)
    firsts = [sampler.next_batch().input_ids[0].tolist() for _ in range(12)]
    assert len({tuple(f) for f in firsts}) == 2  # both highlights are drawn over the epochs
    again = ExampleSampler([variants], batch_size=1, seed=0, pad_id=TOK.eot_id)
    assert [again.next_batch().input_ids[0].tolist() for _ in range(12)] == firsts


def test_the_article_is_cut_to_fit_and_the_summary_kept():
    long = Article("y", " ".join(["The council met again."] * 60), ("It met .",))
    (example,) = article_examples(long, TOK, recipe("mindspore"), seq_len=40)
    assert len(example) == 41
    assert TOK.decode(example.tokens).endswith(" TL;DR: It met .<|endoftext|>")
    assert TOK.decode(example.tokens).startswith("The council met again.")
    (everything,) = article_examples(long, TOK, recipe("mindspore"), seq_len=40, loss_on="all")
    assert everything.tokens == example.tokens and counted(everything) == example.tokens[1:]
    with pytest.raises(SummarizationError, match="article y: its summary and the separator take 8 tokens, more "
                                                 "than the training context of 6"):
        article_examples(long, TOK, recipe("mindspore"), seq_len=6)
    with pytest.raises(SummarizationError, match="'gpt2-paper' is a zero-shot prompt"):
        recipe("gpt2-paper", training=True)
    with pytest.raises(SummarizationError, match="unknown recipe 'bart'"):
        recipe("bart")


def test_summary_only_loss_ignores_the_article():
    """The loss's gradient reaches no logit of a position that predicts an article token, and equals
    PyTorch's cross-entropy over the summary positions alone."""
    model = GPT2.from_config(tiny_config(), seed=0).eval()
    examples = [article_examples(a, TOK, recipe("mindspore"), 64)[0] for a in read_articles(CNNDM / "test.jsonl",
                                                                                            limit=3)]
    batch = collate(examples, TOK.eot_id)
    loss = LanguageModeling(model)(batch)
    logits = model(batch.input_ids).detach().requires_grad_(True)
    keep = batch.labels != -100
    reference = torch.nn.functional.cross_entropy(logits[keep], batch.labels[keep])
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    reference.backward()
    assert logits.grad[~keep].abs().max() == 0
    scrambled = batch.input_ids.clone()
    labels = batch.labels.clone()
    labels[~keep] = -100  # article labels are ignored whatever they were
    assert LanguageModeling(model)(Batch(scrambled, labels)).item() == pytest.approx(loss.item(), abs=0)


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread (two threads spend their time waiting on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_tiny_model_learns_eight_summaries_and_writes_them_back(tmp_path, one_thread):
    model = GPT2.from_config(tiny_config(n_layer=1, n_embd=32, n_head=2, n_positions=64), seed=0)
    model.save_pretrained(tmp_path / "tiny")
    config = TrainConfig(data=CNNDM / "test.jsonl", out=tmp_path / "run", model=tmp_path / "tiny",
                         task="summarization", limit=8, seq_len=40, batch_size=8, max_steps=50, base_lr=2e-2,
                         dropout=0.0, progress=False)
    trainer = Trainer(config)
    result = trainer.run()
    assert result.train_loss < 0.1  # from 10.8
    trained = GPT2.from_pretrained(result.model_dir).eval()
    for variants in trainer.data.train_examples:
        (example,) = variants
        target = example.parts[-1].ids
        prompt = list(example.tokens[:len(example) - len(target)])
        (ids,) = generate(trained, [prompt], max_new_tokens=len(target), temperature=0)
        assert ids == list(target)
