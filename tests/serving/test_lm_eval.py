"""lm-evaluation-harness (EleutherAI's lm_eval, its `local-completions` model) against the real
server: a log-likelihood multiple-choice task and a generation task, each read from a local
JSONL file of KJV verses (tests/fixtures/lm_eval). The harness tokenizes with transformers'
tokenizer of the shipped model's folder, splits context from continuation, sends token ids and
sums the server's echoed log-probabilities itself; every number it reports must equal scoring
and greedy generation in-process with gpt2kit's own tokenizer.

lm_eval is the `harness` extra (not in `all`: it pulls in datasets, pandas, evaluate...);
without it the test is skipped.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import gpt2kit
from serving_helpers import API_KEY

ROOT = Path(__file__).parents[2]
TASKS = ROOT / "tests" / "fixtures" / "lm_eval"
MODEL_DIR = ROOT / "src" / "gpt2kit" / "default_model"
TOLERANCE = 1e-4  # nats: float32 logits, summed over a continuation of up to ~25 tokens

pytestmark = pytest.mark.skipif(importlib.util.find_spec("lm_eval") is None,
                                reason="lm-evaluation-harness is not installed: pip install 'gpt2kit[harness]'")


@pytest.fixture(scope="module")
def harness_run(server, tmp_path_factory):
    """Both tasks through lm_eval's Python API (what `lm_eval run --include_path` does)."""
    mp = pytest.MonkeyPatch()
    cache = tmp_path_factory.mktemp("hf-datasets")
    mp.setenv("HF_DATASETS_CACHE", str(cache))  # the JSON files' Arrow copies, kept out of the home folder
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("OPENAI_API_KEY", API_KEY)  # what local-completions sends as the bearer token
    mp.chdir(ROOT)  # the task files name their data relative to the repository's root
    try:
        import datasets.config
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager

        mp.setattr(datasets.config, "HF_DATASETS_CACHE", cache)  # if another test imported datasets first
        results = simple_evaluate(
            model="local-completions",
            model_args={"model": "test-model", "base_url": f"{server.v1}/completions",
                        "tokenizer_backend": "huggingface", "tokenizer": str(MODEL_DIR),
                        "max_length": server.loaded.model.config.n_positions},
            tasks=["kjv_choice", "kjv_continue"], batch_size=4, log_samples=True,
            task_manager=TaskManager(include_path=str(TASKS), include_defaults=False), verbosity="WARNING")
    finally:
        mp.undo()
    return results


@pytest.fixture(scope="module")
def reference():
    """The shipped model loaded again, apart from the one the server runs."""
    return gpt2kit.load()


def arguments(sample: dict) -> list[tuple]:
    args = sample["arguments"]
    if isinstance(args, dict):  # the logged form: {"gen_args_0": {"arg_0": ..., "arg_1": ...}, ...}
        return [tuple(a.values()) for a in args.values()]
    return [tuple(a) for a in args]


def test_loglikelihoods_equal_in_process_scoring(harness_run, reference):
    samples = harness_run["samples"]["kjv_choice"]
    assert len(samples) == 8
    tokenizer, checked = reference.tokenizer, 0
    for sample in samples:
        choices = arguments(sample)
        assert len(choices) == 4 == len(sample["resps"])
        for (context, continuation), resp in zip(choices, sample["resps"], strict=True):
            harness_ll, harness_greedy = resp[0]
            whole = tokenizer.encode(context + continuation)
            start = len(tokenizer.encode(context))
            assert tokenizer.encode(context) == whole[:start]  # the split the harness makes, made here too
            (scored,) = gpt2kit.score(reference.model, whole, top_logprobs=1)
            expected = sum(scored.logprobs[start:])
            greedy = all(max(top, key=top.get) == token
                         for token, top in zip(whole[start:], scored.top_logprobs[start:], strict=True))
            assert float(harness_ll) == pytest.approx(expected, abs=TOLERANCE), (context, continuation)
            assert bool(harness_greedy) == greedy
            checked += 1
    assert checked == 32
    accuracy = harness_run["results"]["kjv_choice"]["acc,none"]
    assert 0.0 <= accuracy <= 1.0


def test_generations_equal_in_process_greedy_decoding(harness_run, reference):
    samples = harness_run["samples"]["kjv_continue"]
    assert len(samples) == 3
    for sample in samples:
        ((prompt, gen_kwargs),) = arguments(sample)
        # what the harness sends as `stop`: the task's `until` and the tokenizer's end-of-text string
        stop = [*gen_kwargs["until"], "<|endoftext|>"]
        (expected,) = gpt2kit.complete(reference.model, reference.tokenizer, prompt, temperature=0,
                                       max_new_tokens=gen_kwargs["max_gen_toks"], stop=stop)
        (generated,) = sample["resps"][0]
        assert generated == expected.text, prompt
        assert expected.text  # something was generated, so equality says something
