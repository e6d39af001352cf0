"""The trainer on examples instead of windows: a summary learnt after its article, with the
loss on the summary only, checkpoints, and an exact resume."""

from __future__ import annotations

import json
import random

import torch

from gpt2kit import GPT2
from gpt2kit.data import Example, ExampleSampler, TrainingData, example_batches
from gpt2kit.training import TrainConfig, Trainer
from gpt2kit.training import checkpoints as ckpt

WORDS = "light water earth heaven night day seed tree fruit fish bird beast man woman garden river".split()


def records(n: int, seed: int) -> list[tuple[str, str]]:
    """(article, summary): the summary names the article's first two words."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randint(8, 20))
        out.append((" ".join(words), f"{words[0]} and {words[1]}"))
    return out


def summaries(config: TrainConfig, tokenizer, seq_len: int) -> TrainingData:
    def example(article: str, summary: str) -> Example:
        return Example.source_target(tokenizer.encode(f"{article}\nTL;DR:"),
                                     tokenizer.encode(f" {summary}") + [tokenizer.eot_id]).fit(seq_len)

    train = [example(*r) for r in records(64, seed=0)]
    val = [example(*r) for r in records(12, seed=1)]
    return TrainingData(ExampleSampler(train, config.batch_size, config.seed),
                        lambda: example_batches(val, config.batch_size, config.eval_batches), name="summaries")


def losses(out) -> list[float]:
    return [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_a_summary_is_learnt_through_the_same_trainer_and_resumes_exactly(tmp_path):
    out = tmp_path / "run"
    settings = dict(data=tmp_path / "summaries.jsonl", out=out, from_scratch="tiny", seq_len=40, batch_size=4,
                    max_steps=12, base_lr=3e-3, dropout=0.0, eval_every=4, eval_batches=3, save_every=4, keep_last=3,
                    progress=False)
    trainer = Trainer(TrainConfig(**settings), data=summaries)
    summary = trainer.summary()
    assert "data        summaries" in summary and "4 x 1 accumulation = 4 rows per step, 64 per epoch" in summary
    batch = next(iter(trainer.data.validation()))
    counted = int((batch.labels != -100).sum())
    targets = sum(len(trainer.tokenizer.encode(f" {s}")) + 1 for _, s in records(12, seed=1)[:4])
    assert counted == targets  # the loss counts the summaries (and their <|endoftext|>) only
    before = trainer.evaluate()
    result = trainer.run()
    assert result.val_loss < before - 2.0  # from ~10.8 (uniform over the vocabulary) well down
    first = losses(out)
    assert len(first) == 12 and sum(first[-3:]) < sum(first[:3]) - 3.0
    weights = GPT2.from_pretrained(out / "model").state_dict()

    # resumed from step 4, the run goes again through steps 5..12 exactly as before
    older = ckpt.checkpoint_dir(out) / "step-0000004"
    assert ckpt.load_state(older)["sampler"] == {"epoch": 0, "position": 16}
    resumed = Trainer(TrainConfig(**settings, resume=str(older)), data=summaries)
    assert resumed.step == 4
    again = resumed.run()
    assert losses(out) == first and again.val_loss == result.val_loss
    assert all(torch.equal(v, GPT2.from_pretrained(out / "model").state_dict()[k]) for k, v in weights.items())
