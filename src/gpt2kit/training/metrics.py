"""A run's metrics: metrics.jsonl read back (a line cut short by a kill passed over) and loss.png."""

from __future__ import annotations

import json
from pathlib import Path

from gpt2kit.extras import require


def read_metrics(path: Path) -> list[dict]:
    """The records of metrics.jsonl; a line cut short by a kill is passed over."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def plot_losses(metrics: Path, out: Path) -> Path:
    """Training (and validation) loss against step, as a PNG. Raises MissingExtraError without
    matplotlib (the `plot` extra)."""
    matplotlib = require("matplotlib", "plot", f"the loss plot {out.name}")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = read_metrics(metrics) if metrics.is_file() else []
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val, strict=True), label="validation", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
