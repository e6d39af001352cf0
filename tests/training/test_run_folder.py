"""The run folder's loss plot: drawn with the plot extra, one note without it, never a failed run."""

from __future__ import annotations

import json
import sys

from gpt2kit.training import TrainConfig
from gpt2kit.training.run_folder import RunFolder


def folder_with_metrics(tmp_path) -> RunFolder:
    out = tmp_path / "run"
    out.mkdir()
    rows = [{"step": s, "loss": 5.0 - s / 10} for s in range(1, 6)] + [{"step": 5, "val_loss": 4.8}]
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return RunFolder(TrainConfig(data=tmp_path / "x.txt", out=out, from_scratch="tiny", max_steps=5, resume="latest"))


def test_plot_is_written_with_matplotlib(tmp_path):
    folder = folder_with_metrics(tmp_path)
    folder.plot()
    assert (folder.out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_plot_extra_is_one_note_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    folder = folder_with_metrics(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    folder.plot()
    folder.plot()
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "pip install 'gpt2kit[plot]'" in err and "loss.png" in err
    assert not (folder.out / "loss.png").exists()
