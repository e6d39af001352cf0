"""Several training runs in one torchrun launch (start-up costs seconds per launch): each job is
either a `gpt2kit` command line, run as the console script runs it, or TrainConfig fields.

    torchrun --nproc-per-node 2 distributed_driver.py JOBS.json
"""

from __future__ import annotations

import json
import sys

import torch.distributed

from gpt2kit.cli.main import main
from gpt2kit.training import TrainConfig, Trainer


def run(job: dict) -> None:
    if "cli" in job:
        code = main(job["cli"])
        if code:
            sys.exit(code)
    else:
        Trainer(TrainConfig(**job["config"])).run()  # the process group stays for the next job


if __name__ == "__main__":
    for job in json.loads(open(sys.argv[1]).read()):
        run(job)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
