"""Training under torchrun on CPU (gloo): 2 ranks x batch 2 give the losses of 1 process x batch 4.

The reference is a single-process run of the same seed in this process: the same windows,
the same mean over the global batch, so the losses agree to rounding (all-reduce order and
the split of the matrix products), within 1e-4 at every step, for DDP and FSDP, with and
without gradient accumulation. Checkpoints of 2 ranks resume on 2 and on 1 with the losses
of the uninterrupted run, sharded ones (--sharded-checkpoints, each rank its own shards) too.
torchrun's start-up costs seconds, so one launch runs every job.
"""

from __future__ import annotations

import json
import lzma
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gpt2kit import GPT2
from gpt2kit.errors import TrainingError
from gpt2kit.training import TrainConfig, Trainer, finetune
from gpt2kit.training import checkpoints as ckpt

FIXTURES = Path(__file__).parents[1] / "fixtures"
DRIVER = Path(__file__).parent / "distributed_driver.py"
TOLERANCE = 1e-4


def _env() -> dict[str, str]:
    src = str(Path(__file__).parents[2] / "src")
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}  # 2 ranks on 2 cores: one thread each


def torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    # torchrun is torch.distributed.run's console script; --standalone picks a free port
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           *args], capture_output=True, text=True, env=_env(), timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "genesis.txt"
    path.write_text(lzma.decompress((FIXTURES / "kjv.txt.xz").read_bytes()).decode()[:200_000])
    return path


def settings(text: Path, out: Path, **overrides) -> dict:
    base = dict(data=str(text), out=str(out), from_scratch="tiny", seq_len=32, max_steps=5, dropout=0.0,
                base_lr=1e-3, save_every=3, val_fraction=0.1, eval_every=2, eval_batches=3, progress=False,
                cache_dir=str(text.parent / "cache"))
    return {**base, **overrides}


FROM_MODEL = dict(from_scratch=None, max_steps=3, save_every=0, val_fraction=0.0, eval_every=0)


def metrics(out: Path, key: str = "loss") -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r[key] for r in rows if key in r}


def assert_close(got: dict[int, float], want: dict[int, float]) -> None:
    assert got.keys() == want.keys(), (got, want)
    for step in want:
        assert abs(got[step] - want[step]) < TOLERANCE, (step, got[step], want[step])


@pytest.fixture(scope="module")
def runs(text, tmp_path_factory):
    """One torchrun launch of 2 ranks: DDP and FSDP (sharded checkpoints), without and with
    accumulation (batch 2 per rank), then the checkpoints of step 3 resumed on 2 ranks (the DDP one
    by the CLI), and two bad inputs that stop both ranks. The first job tokenizes the text into a
    fresh cache, logging who writes it."""
    root = tmp_path_factory.mktemp("runs")
    GPT2.from_config("tiny", seed=7).save_pretrained(root / "start")  # a model to fine-tune (--model)
    cli = ["finetune", "--data", str(text), "--from-scratch", "tiny", "--max-steps", "5",
           "--cache-dir", str(text.parent / "cache")]
    jobs = [{"config": settings(text, root / "ddp", batch_size=2, cache_dir=str(root / "fresh-cache")),
             "trace_token_files": str(root / "token-files.log")},
            {"config": settings(text, root / "ddp-accum", batch_size=2, grad_accum=2, save_every=0)},
            {"config": settings(text, root / "fsdp", batch_size=2, fsdp=True, sharded_checkpoints=True)},
            {"config": settings(text, root / "fsdp-accum", batch_size=2, grad_accum=2, fsdp=True)},
            {"config": settings(text, root / "fsdp-accum-resumed", batch_size=2, grad_accum=2, fsdp=True,
                                resume=str(root / "fsdp-accum/checkpoints/step-0000003"))},
            {"config": settings(text, root / "fsdp-resumed", batch_size=2, fsdp=True, sharded_checkpoints=True,
                                resume=str(root / "fsdp/checkpoints/step-0000003"))},
            {"config": settings(text, root / "fsdp-model", **FROM_MODEL, model=str(root / "start"), batch_size=2,
                                fsdp=True)},
            {"cli": [*cli, "--out", str(root / "bad"), "--sharded-checkpoints"], "exit": 1},
            {"cli": [*cli, "--out", str(root / "ddp")], "exit": 1},
            {"cli": ["finetune", "--data", str(text), "--out", str(root / "ddp-resumed"), "--from-scratch", "tiny",
                     "--seq-len", "32", "--max-steps", "5", "--dropout", "0", "--lr", "1e-3", "--save-every", "3",
                     "--val-fraction", "0.1", "--eval-every", "2", "--eval-batches", "3", "--batch-size", "2",
                     "--cache-dir", str(text.parent / "cache"),
                     "--resume", str(root / "ddp/checkpoints/step-0000003")]}]
    (root / "jobs.json").write_text(json.dumps(jobs))
    result = torchrun(str(DRIVER), str(root / "jobs.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result


@pytest.fixture(scope="module")
def reference(text, tmp_path_factory):
    """The single-process runs of the same seed with batch 4 (x 1 and x 2 accumulation)."""
    root = tmp_path_factory.mktemp("reference")
    for name, accum in (("single", 1), ("single-accum", 2)):
        finetune(TrainConfig(**settings(text, root / name, batch_size=4, grad_accum=accum, save_every=0)))
    return root


@pytest.mark.parametrize("run, single", [("ddp", "single"), ("ddp-accum", "single-accum"),
                                         ("fsdp", "single"), ("fsdp-accum", "single-accum")])
def test_two_ranks_give_the_losses_of_one_process_with_the_global_batch(runs, reference, run, single):
    root, _ = runs
    assert len(metrics(root / run)) == 5
    assert_close(metrics(root / run), metrics(reference / single))
    assert_close(metrics(root / run, "val_loss"), metrics(reference / single, "val_loss"))
    # the final model rank 0 wrote is whole (FSDP's shards gathered, or read back from the sharded
    # checkpoint) and matches the reference's weights
    trained, want = GPT2.from_pretrained(root / run / "model"), GPT2.from_pretrained(reference / single / "model")
    for (name, a), b in zip(trained.state_dict().items(), want.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0, msg=name)


def test_fsdp_fine_tunes_a_model_that_rank_0_alone_reads(runs, tmp_path):
    """--model under FSDP: rank 0 reads the weights and sends each rank its shards; the losses are
    those of one process fine-tuning the same model with the global batch."""
    root, _ = runs
    text = Path(json.loads((root / "fsdp-model" / "train_config.json").read_text())["data"])
    finetune(TrainConfig(**settings(text, tmp_path / "single", **FROM_MODEL, model=str(root / "start"),
                                    batch_size=4)))
    assert len(metrics(tmp_path / "single")) == 3
    assert_close(metrics(root / "fsdp-model"), metrics(tmp_path / "single"))


def test_checkpoints_hold_every_rank_state(runs):
    root, _ = runs
    for run in ("ddp", "fsdp-accum"):
        state = ckpt.load_state(root / run / "checkpoints" / "step-0000003")
        assert state["world_size"] == 2 and len(state["rng_ranks"]) == 2
        assert not torch.equal(state["rng_ranks"][0]["torch"], state["rng_ranks"][1]["torch"])  # own dropout masks
        # the optimizer state is whole, as one process holds it
        moments = [entry["exp_avg"] for entry in state["optimizer"]["state"].values()]
        assert sum(m.numel() for m in moments) == sum(p.numel() for p in GPT2.from_pretrained(
            root / run / "model").parameters())


def test_a_two_rank_checkpoint_resumes_on_two_ranks_and_on_one(runs, text, tmp_path):
    root, result = runs
    assert_close(metrics(root / "ddp-resumed"), {s: v for s, v in metrics(root / "ddp").items() if s > 3})
    assert_close(metrics(root / "fsdp-accum-resumed"),
                 {s: v for s, v in metrics(root / "fsdp-accum").items() if s > 3})
    for run, accum in (("ddp", 1), ("fsdp-accum", 2)):
        out = tmp_path / f"{run}-on-one"
        finetune(TrainConfig(**settings(text, out, batch_size=4, grad_accum=accum,
                                        resume=str(root / run / "checkpoints" / "step-0000003"))))
        assert_close(metrics(out), {s: v for s, v in metrics(root / run).items() if s > 3})
    # the CLI under torchrun: rank 0 alone prints the summary, with the ranks and the global batch
    assert result.stderr.count("ranks       2 ranks (gloo, DDP): 2 per rank x 2 = 4 rows per micro-batch") == 1
    assert result.stderr.count("4 x 1 accumulation x 32 tokens = 128 tokens per step") == 1
    assert result.stdout.count("trained steps 4 to 5") == 1


def test_sharded_checkpoints_hold_each_rank_shards_and_resume_on_two_ranks_and_on_one(runs, reference, text,
                                                                                     tmp_path):
    root, _ = runs
    step3 = root / "fsdp" / "checkpoints" / "step-0000003"
    shards = sorted(p.name for p in (step3 / "shards").iterdir())
    assert shards == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    assert not list(step3.glob("*.safetensors"))  # no rank put the whole weights together
    state = ckpt.load_state(step3)
    assert "optimizer" not in state and state["world_size"] == 2 and len(state["rng_ranks"]) == 2
    assert [g["weight_decay"] for g in state["param_groups"]] == [0.01, 0.0]
    # on 2 ranks (in the torchrun launch) and on 1 without FSDP (DCP cuts the shards anew): the
    # uninterrupted run's losses
    later = {s: v for s, v in metrics(root / "fsdp").items() if s > 3}
    assert_close(metrics(root / "fsdp-resumed"), later)
    finetune(TrainConfig(**settings(text, tmp_path / "on-one", batch_size=4, resume=str(step3))))
    assert_close(metrics(tmp_path / "on-one"), later)
    # put together: the final checkpoint read as a model, `gpt2kit convert` of it, the final model
    # folder and the single process's weights agree
    from gpt2kit.cli.main import main

    assert main(["convert", str(root / "fsdp" / "checkpoints" / "step-0000005"), str(tmp_path / "converted")]) == 0
    want = GPT2.from_pretrained(reference / "single" / "model").state_dict()
    for source in (root / "fsdp" / "checkpoints" / "step-0000005", tmp_path / "converted", root / "fsdp" / "model"):
        got = GPT2.from_pretrained(source).state_dict()
        assert got.keys() == want.keys()
        for name in want:
            torch.testing.assert_close(got[name], want[name], atol=1e-5, rtol=0, msg=f"{source}: {name}")


def test_a_sharded_checkpoint_is_read_without_unpickling_anything_but_its_index(runs, tmp_path):
    """DCP's index is a pickle: one that names anything but DCP's own metadata classes is refused
    before it runs, and an index of values other than tensors (which DCP would unpickle freely) too."""
    import pickle
    import shutil

    import torch.distributed.checkpoint as dcp

    from gpt2kit.errors import WeightsError

    root, _ = runs
    bad = tmp_path / "bad"
    shutil.copytree(root / "fsdp" / "checkpoints" / "step-0000005", bad)

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    (bad / "shards" / ".metadata").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(WeightsError, match=r"refers to (posix|os)\.system, which a DCP index of tensors does not hold"):
        GPT2.from_pretrained(bad)
    assert not (tmp_path / "ran").exists()
    objects = tmp_path / "objects"
    shutil.copytree(root / "fsdp" / "checkpoints" / "step-0000005", objects)
    shutil.rmtree(objects / "shards")
    with pytest.warns(UserWarning, match="single process"):
        dcp.save({"model": {"objective.model.wte.weight": torch.zeros(2, 2)}, "note": {"any": "object"}},
                 storage_writer=dcp.FileSystemWriter(str(objects / "shards")))
    with pytest.raises(WeightsError, match="holds pickled values besides tensors"):
        GPT2.from_pretrained(objects)


def test_rank0_tokenizes_and_says_the_errors(runs):
    root, result = runs
    # the fresh cache is written once, by rank 0; rank 1 waited and read it
    written = (root / "token-files.log").read_text().splitlines()
    assert len(written) == 1 and written[0].startswith("rank 0 wrote "), written
    # a bad option (before the ranks meet) and a bad --out (rank 0 checks it, the others hear of it):
    # each said once
    for line in ("gpt2kit: error: --sharded-checkpoints saves FSDP's shards; add --fsdp",
                 f"gpt2kit: error: {root / 'ddp'}: already holds files (another run?)"):
        assert result.stderr.count(line) == 1, result.stderr[-3000:]
    assert "rank 1" not in result.stderr


def test_resuming_on_other_ranks_keeps_the_global_batch(runs, text, tmp_path):
    root, _ = runs
    checkpoint = str(root / "ddp" / "checkpoints" / "step-0000003")
    with pytest.raises(TrainingError, match=r"global batches of 4 \(2 ranks x 2\).*pass --batch-size 4"):
        Trainer(TrainConfig(**settings(text, tmp_path / "a", batch_size=2, resume=checkpoint)))
    with pytest.raises(TrainingError, match="this run used --from-scratch 'tiny', not 'mini'"):
        Trainer(TrainConfig(**settings(text, tmp_path / "b", batch_size=4, from_scratch="mini", resume=checkpoint)))


def test_fsdp_needs_torchrun(text, tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(TrainingError, match=r"--fsdp shards the model over the processes torchrun starts"):
        Trainer(TrainConfig(**settings(text, tmp_path / "run", fsdp=True)))
    with pytest.raises(TrainingError, match="--cpu-offload offloads FSDP's shards; add --fsdp"):
        TrainConfig(**settings(text, tmp_path / "run", cpu_offload=True))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_step(out: Path, step: int, procs: list[subprocess.Popen]) -> None:
    """Until metrics.jsonl logs `step` (the run is mid-way), or a process ended."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        if (out / "metrics.jsonl").is_file() and step in metrics(out):
            return
        time.sleep(0.05)
    raise AssertionError(f"step {step} was never logged")


def test_a_killed_rank_stops_the_other_with_one_line(text, tmp_path):
    """Two ranks started as torchrun starts them (its variables), rank 1 killed mid-run: rank 0
    fails at its next collective with one line, and the last checkpoint loads."""
    out = tmp_path / "run"
    args = ["finetune", "--data", str(text), "--out", str(out), "--from-scratch", "tiny", "--seq-len", "32",
            "--batch-size", "2", "--max-steps", "500", "--save-every", "2", "--dropout", "0",
            "--cache-dir", str(text.parent / "cache"), "--dist-timeout", "30"]
    env = {**_env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    logs = [(tmp_path / f"rank{r}.out").open("w+") for r in (0, 1)]
    procs = [subprocess.Popen([sys.executable, "-m", "gpt2kit", *args], env={**env, "RANK": str(r), "LOCAL_RANK":
                              str(r)}, stdout=subprocess.DEVNULL, stderr=logs[r], stdin=subprocess.DEVNULL)
             for r in (0, 1)]
    try:
        _wait_for_step(out, 3, procs)
        procs[1].kill()
        assert procs[0].wait(timeout=60) == 1  # bounded: the collective fails, it does not wait forever
    finally:
        for p in procs:
            p.kill()
            p.wait()
    logs[0].seek(0)
    stderr = logs[0].read()
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("gpt2kit")]
    assert len(lines) == 1 and lines[0].startswith("gpt2kit: error: rank 0: lost contact with the other ranks"), \
        stderr[-2000:]
    assert "--resume continues from the last checkpoint" in lines[0]
    last = ckpt.list_checkpoints(out)[-1]
    assert GPT2.from_pretrained(last).config.n_layer == 2 and ckpt.load_state(last)["step"] >= 2


def _worker_pids(marker: str) -> dict[int, int]:
    """rank -> pid of the processes whose environment holds `marker` (torchrun's workers of this test)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = dict(v.split("=", 1) for v in (entry / "environ").read_bytes().decode(errors="replace")
                       .split("\0") if "=" in v)
        except OSError:
            continue
        if env.get("GPT2KIT_TEST_MARKER") == marker and "RANK" in env and "TORCHELASTIC_RUN_ID" in env:
            found[int(env["RANK"])] = int(entry.name)
    return found


def test_torchrun_restarts_continue_the_run(text, tmp_path):
    """`torchrun --max-restarts 1 ... --resume`: the first attempt starts the run (no checkpoint yet),
    rank 1 is killed mid-run, torchrun starts both again and they continue from the last checkpoint
    to the losses of one uninterrupted process with the global batch."""
    out, steps = tmp_path / "run", 8
    common = dict(seq_len=32, max_steps=steps, save_every=2, val_fraction=0.0, eval_every=0)
    finetune(TrainConfig(**settings(text, tmp_path / "single", batch_size=4, **common)))
    marker = str(tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--max-restarts", "1", "-m", "gpt2kit", "finetune", "--data", str(text), "--out", str(out),
           "--from-scratch", "tiny", "--seq-len", "32", "--batch-size", "2", "--max-steps", str(steps),
           "--save-every", "2", "--dropout", "0", "--lr", "1e-3", "--cache-dir", str(text.parent / "cache"),
           "--resume"]
    with (tmp_path / "torchrun.err").open("w+") as err:
        proc = subprocess.Popen(cmd, env={**_env(), "GPT2KIT_TEST_MARKER": marker}, stdout=subprocess.DEVNULL,
                                stderr=err, stdin=subprocess.DEVNULL)
        try:
            _wait_for_step(out, 3, [proc])
            os.kill(_worker_pids(marker)[1], 9)
            assert proc.wait(timeout=240) == 0
        finally:
            proc.kill()
            proc.wait()
        err.seek(0)
        stderr = err.read()
    assert "holds no checkpoint yet: the run starts from step 0" in stderr
    assert "gpt2kit: error: rank 0: " in stderr  # the survivor said why it stopped
    assert "resuming at step" in stderr
    assert_close(metrics(out), metrics(tmp_path / "single"))  # every step once, as one process has them


def test_each_rank_reads_its_rows_of_the_global_batch():
    """RankSlice on two Worlds (no process group needed): rank 0's rows then rank 1's are the batch
    one process draws, for windows (each rank reading only its own) and for padded examples."""
    from gpt2kit.data.dataset import WindowSampler
    from gpt2kit.data.examples import Example, ExampleSampler
    from gpt2kit.training.distributed import RankSlice, World

    tokens = np.arange(10_000, dtype=np.uint16) % 50_000
    examples = [Example.source_target(list(range(i % 7 + 1)), list(range(100, 100 + i % 5 + 1)))
                for i in range(40)]
    for make in (lambda: WindowSampler(tokens, 16, 6, seed=1), lambda: ExampleSampler(examples, 6, seed=1)):
        single = make()
        ranks = [RankSlice(make(), World(rank, 2)) for rank in (0, 1)]
        assert ranks[0].reads_own_rows == isinstance(single, WindowSampler)
        for _ in range(4):
            whole, parts = single.next_batch(), [r.next_batch() for r in ranks]
            assert all(p.input_ids.shape[0] == 3 for p in parts)
            assert torch.equal(torch.cat([p.input_ids for p in parts]), whole.input_ids)
            assert torch.equal(torch.cat([p.labels for p in parts]), whole.labels)
