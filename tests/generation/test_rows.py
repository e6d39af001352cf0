"""Continuous batching's RowBatch: rows that join and leave between steps decode as they would alone."""

from __future__ import annotations

import pytest
import torch

from gpt2kit.generation.rows import RowBatch
from helpers import random_model


def solo_logits(model, prompt: list[int], tokens: list[int]) -> list[torch.Tensor]:
    """Next-token logits after the prompt and after each of `tokens`, the row run alone."""
    ids = torch.tensor([prompt + tokens])
    with torch.no_grad():
        return list(model(ids)[0, len(prompt) - 1:].float())


def check_joining_and_leaving(model, atol: float) -> None:
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, 50257, (n,), generator=gen).tolist() for n in (5, 9, 2, 14)]
    feeds = [torch.randint(0, 50257, (10,), generator=gen).tolist() for _ in prompts]
    expected = [solo_logits(model, p, f) for p, f in zip(prompts, feeds, strict=True)]
    batch = RowBatch(model)
    # rows are (prompt, copy): prompt 1 runs twice from one prefill; prompt 2 joins before step 3,
    # prompt 3 before step 5; prompt 0 leaves after step 6, the second copy of prompt 1 after step 7
    joins = {3: 2, 5: 3}
    leaves = {6: (0, 0), 7: (1, 1)}
    rows = [(0, 0), (1, 0), (1, 1)]
    logits = batch.add([prompts[0], prompts[1]], [1, 2])
    fed = {row: 0 for row in rows}  # tokens fed to each row
    checked = 0
    for step in range(10):
        if step in joins:
            p = joins[step]
            logits = torch.cat([logits, batch.add([prompts[p]], [1])])
            rows.append((p, 0))
            fed[(p, 0)] = 0
        for r, (p, copy) in enumerate(rows):
            diff = float((logits[r] - expected[p][fed[(p, copy)]]).abs().max())
            assert diff < atol, f"prompt {p} copy {copy}, step {step}: logits differ by {diff}"
            checked += 1
        if step in leaves:
            keep = [r for r, row in enumerate(rows) if row != leaves[step]]
            batch.keep(keep)
            rows = [rows[r] for r in keep]
        tokens = torch.tensor([feeds[p][fed[(p, c)]] for p, c in rows])
        for row in rows:
            fed[row] += 1
        if all(fed[row] < len(feeds[row[0]]) for row in rows) and step < 9:
            logits = batch.step(tokens)
        else:
            break
        # the batch is never wider than its longest row
        assert batch.mask.shape[1] == max(len(prompts[p]) + fed[(p, c)] for p, c in rows)
    assert checked > 25


def test_rows_joining_and_leaving_decode_as_alone():
    check_joining_and_leaving(random_model(), atol=1e-4)


@pytest.mark.parametrize("fused", [False, True])
def test_the_onnxruntime_cache_merges_and_trims_too(tmp_path, fused):
    pytest.importorskip("onnxruntime")
    import gpt2kit
    from gpt2kit.export import export_onnx

    model = random_model()
    model.save_pretrained(tmp_path / "model")
    export_onnx(tmp_path / "model", tmp_path / "onnx", fused=fused)
    ort = gpt2kit.load(tmp_path / "onnx", backend="onnxruntime").model

    check_joining_and_leaving(ort, atol=1e-4)
