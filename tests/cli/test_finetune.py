"""`gpt2kit finetune` from the command line: a short run, and one clear line for each bad input."""

from __future__ import annotations

import errno
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpt2kit.cli.finetune import resume_command
from gpt2kit.cli.main import main
from gpt2kit.training import checkpoints as ckpt
from helpers import assert_user_error, run_cli


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("In the beginning God created the heaven and the earth. " * 40)
    return path


def finetune(*args, tmp_path):
    return run_cli("finetune", "--cache-dir", str(tmp_path / "cache"), *args)


def test_short_run_with_samples_and_validation(text, tmp_path):
    result = finetune("--data", str(text), "--out", str(tmp_path / "run"), "--from-scratch", "tiny", "--seq-len",
                      "32", "--max-steps", "4", "--val-fraction", "0.2", "--eval-every", "2", "--sample-every", "2",
                      "--sample-prompt", "In the", "--sample-tokens", "8", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "trained 4 steps" in result.stdout
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "lr", "tokens_per_s", "val_loss", "val_ppl", "sample"} <= set(rows[1])
    assert rows[1]["sample"].startswith("In the")


@pytest.mark.parametrize(
    "make,extra,fragments",
    [
        (lambda p: p.write_bytes(b""), (), ("no text to train on",)),
        (lambda p: p.write_bytes(b"\x00\x01\x02\x03"), (), ("binary",)),
        (lambda p: p.write_bytes(b"caf\xe9 " * 100), (), ("not UTF-8", "--errors replace")),
        (lambda p: p.write_text("too short"), (), ("fewer than one window",)),
        (lambda p: None, (), ("no such file",)),
        (lambda p: p.write_text("x " * 5000), ("--seq-len", "4096"), ("larger than the model's context",)),
        (lambda p: p.write_text("x " * 5000), ("--batch-size", "0"), ("batch-size",)),
        (lambda p: p.write_text("x " * 5000), ("--base-lr", "-0.1"), ("learning rates",)),
        (lambda p: p.write_text("x " * 5000), ("--dropout", "1.5"), ("dropout must be in [0, 1)",)),
    ],
    ids=["empty", "binary", "not-utf8", "short", "missing", "seq-len", "batch-0", "negative-lr", "dropout"],
)
def test_bad_input(tmp_path, make, extra, fragments):
    data = tmp_path / "data.txt"
    make(data)
    result = finetune("--data", str(data), "--out", str(tmp_path / "run"), "--from-scratch", "tiny", "--seq-len", "64",
                      "--max-steps", "1", *extra, tmp_path=tmp_path)
    assert_user_error(result, *fragments)


def test_output_folder_of_another_run_and_resume_without_state(text, tmp_path):
    args = ("--data", str(text), "--out", str(tmp_path / "run"), "--from-scratch", "tiny", "--seq-len", "32",
            "--max-steps", "1")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("{}\n")
    assert_user_error(finetune(*args, tmp_path=tmp_path), "already holds files", "--overwrite")
    assert_user_error(finetune(*args, "--resume", tmp_path=tmp_path), "no checkpoint")
    assert finetune(*args, "--overwrite", tmp_path=tmp_path).returncode == 0


def test_resume_with_other_settings_and_unknown_device(text, tmp_path):
    args = ("--data", str(text), "--out", str(tmp_path / "run"), "--from-scratch", "tiny", "--seq-len", "32",
            "--max-steps", "2")
    assert finetune(*args, tmp_path=tmp_path).returncode == 0
    assert_user_error(finetune(*args, "--resume", "--batch-size", "3", tmp_path=tmp_path), "--batch-size 1, not 3")
    assert_user_error(finetune(*args, "--overwrite", "--device", "tpu9", tmp_path=tmp_path), "unknown device")
    assert (tmp_path / "run" / "model").is_dir()  # a refused --overwrite run removed nothing


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_summary_validation_lines_and_a_finished_run_resumed(text, tmp_path):
    out = tmp_path / "new" / "deeper" / "run"  # its parents do not exist yet
    args = ("--data", str(text), "--out", str(out), "--from-scratch", "tiny", "--seq-len", "32", "--batch-size", "2",
            "--grad-accum", "3", "--val-fraction", "0.2", "--eval-every", "1", "--schedule", "cosine")
    first = finetune(*args, "--max-steps", "2", tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    for line in ("model       tiny, random weights (seed 0)", "parameters  3,324,736", "for validation",
                 "batch       2 x 3 accumulation x 32 tokens = 192 tokens per step", "steps       2 (",
                 "device      cpu, fp32", f"output      {out} (created, with 2 missing parent folders)",
                 "step 1: validation loss ", "step 2: validation loss ", ", perplexity "):
        assert line in first.stderr, line
    assert "trained 2 steps" in first.stdout and f"model in {out / 'model'}" in first.stdout
    before = (metrics(out), sorted(p.name for p in (out / "checkpoints").iterdir()),
              (out / "model" / "model.safetensors").stat().st_mtime_ns)

    again = finetune(*args, "--max-steps", "2", "--resume", tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already finished at step 2 (--max-steps 2; raise it to train further)" in again.stdout
    assert "nan" not in again.stdout
    after = (metrics(out), sorted(p.name for p in (out / "checkpoints").iterdir()),
             (out / "model" / "model.safetensors").stat().st_mtime_ns)
    assert after == before  # nothing to do, nothing rewritten

    further = finetune(*args, "--max-steps", "4", "--resume", tmp_path=tmp_path)
    assert further.returncode == 0, further.stderr
    assert "trained steps 3 to 4" in further.stdout
    rows = [r for r in metrics(out) if "lr" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    # the cosine schedule continues along the new total of 4 steps (step s uses progress (s - 1) / 4)
    assert [r["lr"] for r in rows[2:]] == pytest.approx([1e-4 * 0.5 * (1 + math.cos(math.pi * p / 4)) for p in (2, 3)])


def test_ctrl_c_saves_a_checkpoint_and_prints_the_command_that_resumes(text, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "gpt2kit", "finetune", "--data", str(text), "--out", str(out), "--from-scratch",
               "tiny", "--seq-len", "32", "--max-steps", "100000", "--cache-dir", str(tmp_path / "cache")]
    # SIGINT as a terminal sends it (a test runner in the background may have it ignored, which children inherit)
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300  # a loaded machine can take a minute to start the run
    started = False
    while not started and time.time() < deadline and run.poll() is None:
        started = (out / "metrics.jsonl").is_file() and len((out / "metrics.jsonl").read_text().splitlines()) >= 2
        time.sleep(0.05)
    if not started:  # a SIGINT now would land before the training loop, and fail the test for another reason
        run.kill()
        pytest.fail(f"the run did not reach step 2 (exit status {run.wait()}): {run.stderr.read()}")
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert "Traceback" not in err
    steps = len(metrics(out))
    saved = out / "checkpoints" / f"step-{steps:07d}"
    assert f"interrupted at step {steps:,} of 100,000; checkpoint saved in {saved}" in err
    assert (saved / "trainer_state.pt").is_file() and (out / "loss.png").is_file()
    resume = err.split("continue the run with:\n", 1)[1].strip()
    assert shlex.split(resume) == [*command, "--resume"]

    words = shlex.split(resume)
    words[words.index("--max-steps") + 1] = str(steps + 2)  # max-steps may change on resume
    resumed = subprocess.run(words, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"trained steps {steps + 1} to {steps + 2}" in resumed.stdout
    assert [r["step"] for r in metrics(out)] == list(range(1, steps + 3))


def test_model_default_is_the_shipped_model(text, tmp_path):
    result = finetune("--data", str(text), "--out", str(tmp_path / "run"), "--model", "default", "--seq-len", "32",
                      "--max-steps", "1", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "model       default" in result.stderr and "trained 1 step:" in result.stdout


def test_a_full_disk_names_the_checkpoint_not_its_temporary_folder(text, tmp_path, monkeypatch, capsys):
    def full_disk(obj, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))  # path: inside the temporary folder

    monkeypatch.setattr(ckpt.torch, "save", full_disk)
    out = tmp_path / "run"
    code = main(["finetune", "--data", str(text), "--out", str(out), "--from-scratch", "tiny", "--seq-len", "32",
                 "--max-steps", "1", "--cache-dir", str(tmp_path / "cache")])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 1
    assert errors == [f"gpt2kit: error: {out / 'checkpoints' / 'step-0000001'}: could not write the checkpoint "
                      "(No space left on device)"]


@pytest.mark.parametrize("words,expected", [
    (["gpt2kit", "finetune", "--out", "r", "--max-steps", "9"], "gpt2kit finetune --out r --max-steps 9 --resume"),
    (["gpt2kit", "finetune", "--resume", "r/checkpoints/step-0000004", "--out", "r"],
     "gpt2kit finetune --out r --resume"),
    (["gpt2kit", "finetune", "--overwrite", "--resume=x", "--sample-prompt", "In the"],
     "gpt2kit finetune --sample-prompt 'In the' --resume"),
    (["gpt2kit", "finetune", "--out", "r", "--resume", "--seed", "3"], "gpt2kit finetune --out r --seed 3 --resume"),
])
def test_the_resume_command_continues_from_the_latest_checkpoint(words, expected):
    assert resume_command(words) == expected


def test_summarization_task_errors_are_one_line(tmp_path, capsys):
    stories = Path(__file__).parents[1] / "fixtures" / "cnndm" / "stories"
    common = ["finetune", "--task", "summarization", "--data", str(stories), "--from-scratch", "tiny",
              "--out", str(tmp_path / "run"), "--max-steps", "1"]
    assert main([*common, "--limit", "0"]) == 1
    assert capsys.readouterr().err == "gpt2kit: error: --limit must be at least 1, got 0\n"
    with pytest.raises(SystemExit):
        main([*common, "--recipe", "gpt2-paper"])
    assert "invalid choice: 'gpt2-paper'" in capsys.readouterr().err
