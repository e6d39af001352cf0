"""Sharded checkpoints (`finetune --fsdp --sharded-checkpoints`): every rank saves and loads its own
shards of the weights and AdamW state with torch.distributed.checkpoint (DCP); no rank gathers the
whole model or optimizer.

The checkpoint folder holds config.json and the tokenizer files (the model's shape, no weights),
`shards/` (DCP: one file per rank plus its index; weights/dcp.py reads it) and trainer_state.pt
(step, data position, every rank's RNG, the optimizer's hyperparameters). DCP keeps each tensor's
global shape and each shard's offsets, so a checkpoint loads on any number of ranks (FSDP cuts
the tensors anew), and in one process without FSDP. Only tensors go into `shards/`: DCP would
store anything else as a pickle it loads unrestricted.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from gpt2kit.training.distributed import collective
from gpt2kit.weights.dcp import SHARDS, reader


def _state(module: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """The module's and the optimizer's state dicts as DCP wants them: this rank's shards, under
    the module's parameter names (the optimizer's state made if no step has run yet)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    with collective("listing the shards"):
        return get_state_dict(module, optimizer)


def save_shards(folder: Path, module: nn.Module, optimizer: torch.optim.Optimizer) -> list[dict]:
    """Write this rank's shards into `folder`/shards (a collective: every rank calls it, rank 0
    writes the index once all have written); returns the optimizer's param_groups, which go into
    the trainer state."""
    import torch.distributed.checkpoint as dcp

    model_state, optim_state = _state(module, optimizer)
    with collective("writing the checkpoint's shards"):
        dcp.save({"model": model_state, "optim": {"state": optim_state["state"]}},
                 storage_writer=dcp.FileSystemWriter(str(folder / SHARDS)))
    return optim_state["param_groups"]


def load_shards(folder: Path, module: nn.Module, optimizer: torch.optim.Optimizer, param_groups: list[dict]) -> None:
    """Read this rank's part of the weights and optimizer state from `folder`/shards, whatever the
    number of ranks that wrote them."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    model_state, optim_state = _state(module, optimizer)
    with collective("reading the checkpoint's shards"), warnings.catch_warnings():
        # in one process (a checkpoint of several ranks resumed without torchrun) DCP warns that it
        # "assumes the intent": it is the intent
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        dcp.load({"model": model_state, "optim": {"state": optim_state["state"]}},
                 storage_reader=reader(folder / SHARDS))
        set_state_dict(module, optimizer, model_state_dict=model_state,
                       optim_state_dict={"state": optim_state["state"], "param_groups": param_groups})
