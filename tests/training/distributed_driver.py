"""Several training runs in one torchrun launch (start-up costs seconds per launch): each job is
either a `gpt2kit` command line, run as the console script runs it, or TrainConfig fields.

    torchrun --nproc-per-node 2 distributed_driver.py JOBS.json

A job may also give `"exit": N` (the command's expected exit code: a bad input that stops every
rank, the launch goes on) and `"trace_token_files": PATH` (each token file the job writes is
logged there with the writing rank, to see who tokenizes).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

import torch.distributed

import gpt2kit.data.dataset as dataset
from gpt2kit.cli.main import main
from gpt2kit.training import TrainConfig, Trainer


@contextlib.contextmanager
def traced_token_files(log: str | None):
    if log is None:
        yield
        return
    write = dataset.write_tokens

    def traced(path, *args, **kwargs):
        with open(log, "a") as f:
            f.write(f"rank {os.environ['RANK']} wrote {path}\n")
        return write(path, *args, **kwargs)

    dataset.write_tokens = traced
    try:
        yield
    finally:
        dataset.write_tokens = write


def run(job: dict) -> None:
    with traced_token_files(job.get("trace_token_files")):
        if "cli" in job:
            code = main(job["cli"])
            if code != job.get("exit", 0):
                sys.exit(code or 3)
        else:
            Trainer(TrainConfig(**job["config"])).run()  # the process group stays for the next job


if __name__ == "__main__":
    for job in json.loads(open(sys.argv[1]).read()):
        run(job)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
