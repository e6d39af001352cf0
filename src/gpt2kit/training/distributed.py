"""Training on several processes: torch.distributed as torchrun (or `srun torchrun`) starts it.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for each process;
`join()` reads them and sets up the process group (NCCL on CUDA, gloo on CPU) with a
timeout on every collective, so a rank that dies or hangs makes the others fail with one
line instead of waiting forever. A process started without them is a world of one and
touches nothing of torch.distributed.

The same run on any number of ranks: every rank draws the whole global batch from the same
seeded generator and keeps its own rows (`RankSlice`), and the loss a rank backpropagates
is its summed loss over the global count of counted tokens, times the world size, which the
gradient averaging of DDP and FSDP divides back: the gradient of the mean over the global
batch, as one process with the global batch computes it, padded rows or not.

`wrap()` puts the objective under DDP (replicated weights, one all-reduce per optimizer
step) or FSDP2 (`fully_shard` on each block and on the whole: weights, gradients and
optimizer state sharded across ranks). The wrapped module returns the objective's totals.
Checkpoints hold what one process would hold (full weights and optimizer state), gathered
from the shards: they resume on any number of ranks, with or without FSDP; with
--sharded-checkpoints each rank writes its own shards instead (training/sharded.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
from torch import nn

from gpt2kit.data.batch import Batch, BatchSource
from gpt2kit.errors import GPT2KitError, TrainingError
from gpt2kit.training.objectives import Objective


class DistributedError(GPT2KitError):
    """A rank lost contact with the others: one died, hung or was stopped."""


LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


_joined = False  # this process has met the other ranks (join() set up the process group)


def joined() -> bool:
    return _joined


def launched() -> bool:
    """Whether this process was started by torchrun (or anything that sets its variables)."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE"))


@dataclass
class World:
    """This process's place among the ranks of a run; a world of one when not launched by torchrun."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: no process group
    timeout: float = 0.0

    @property
    def is_main(self) -> bool:
        """Rank 0, the one that writes files and prints."""
        return self.rank == 0

    @property
    def grouped(self) -> bool:
        return self.backend is not None

    def device(self, device: torch.device) -> torch.device:
        """Each rank's own GPU on a node (cuda:LOCAL_RANK); the CPU stays the CPU."""
        if self.grouped and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def all_sum(self, values: list[float], device: torch.device) -> list[float]:
        """The sums over ranks of a few numbers, in one collective."""
        if not self.grouped:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        with collective("summing the step's numbers"):
            torch.distributed.all_reduce(t)
        return t.tolist()

    def sum_tensor(self, t: torch.Tensor) -> torch.Tensor:
        if self.grouped:
            t = t.detach().clone()
            with collective("summing token counts"):
                torch.distributed.all_reduce(t)
        return t

    def agree(self, value: Any) -> Any:
        """Rank 0's value, on every rank: decisions read from files, which ranks could see at
        different moments, are taken once."""
        if not self.grouped:
            return value
        box = [value]
        with collective("agreeing on the next step"):
            torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def decide(self, choose: Callable[[], Any]) -> Any:
        """`choose()` run by rank 0 alone (it may change files, as resolving a checkpoint does), its
        result or its user error given to every rank."""
        if not self.grouped:
            return choose()
        try:
            outcome = (True, choose()) if self.is_main else None
        except GPT2KitError as err:
            outcome = (False, err)
        ok, value = self.agree(outcome)
        if not ok:
            raise _from_rank0(value, self)
        return value

    def first(self, make: Callable[[], Any], what: str) -> Any:
        """`make()` on rank 0, then on the others once it is done (they wait, at most the collective
        timeout): what rank 0 writes on the way, a token cache say, the others read instead of
        writing it again. A user error on rank 0 stops every rank."""
        if not self.grouped:
            return make()
        value, error = None, None
        if self.is_main:
            try:
                value = make()
            except GPT2KitError as err:
                error = err
        box = [error]
        with collective(f"waiting for rank 0 {what}"):
            torch.distributed.broadcast_object_list(box, src=0)
        if box[0] is not None:
            raise _from_rank0(box[0], self)
        return value if self.is_main else make()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's value, in rank order, on every rank."""
        if not self.grouped:
            return [value]
        out: list[Any] = [None] * self.size
        with collective("gathering the ranks' states"):
            torch.distributed.all_gather_object(out, value)
        return out

    def barrier(self, what: str = "waiting for the other ranks") -> None:
        if self.grouped:
            with collective(what):
                torch.distributed.barrier()

    def describe(self, mode: str, batch_size: int) -> str:
        return (f"{self.size} rank{'s' * (self.size != 1)} ({self.backend}, {mode}): {batch_size} per rank x "
                f"{self.size} = {batch_size * self.size} rows per micro-batch")


def join(device: torch.device, timeout: float) -> World:
    """This process's World; under torchrun, the process group is set up (a collective that
    waits for every rank, at most `timeout` seconds)."""
    if not launched():
        return World()
    try:
        rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise TrainingError(f"RANK={os.environ['RANK']!r} / WORLD_SIZE={os.environ['WORLD_SIZE']!r} are not "
                            "numbers; start the run with torchrun") from None
    global _joined
    backend = "nccl" if device.type == "cuda" else "gloo"
    world = World(rank, size, local_rank, backend, timeout)
    _joined = True
    if device.type == "cuda":
        torch.cuda.set_device(world.device(device))
    if not torch.distributed.is_initialized():
        with collective("starting the process group"):
            torch.distributed.init_process_group(backend, store=_store(world, timeout), rank=rank, world_size=size,
                                                 timeout=timedelta(seconds=timeout),
                                                 **({"device_id": world.device(device)} if device.type == "cuda"
                                                    else {}))
    return world


def _store(world: World, timeout: float) -> torch.distributed.Store:
    """The rendezvous store, its keys apart for each of torchrun's restarts: torchrun's own store
    outlives a failed attempt, and the restarted ranks would otherwise read the addresses of the
    dead ones (gloo then fails with "Connection refused")."""
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"  # torchrun's agent hosts the store
    try:
        store = torch.distributed.TCPStore(os.environ.get("MASTER_ADDR", "127.0.0.1"),
                                           int(os.environ.get("MASTER_PORT", "29500")), world.size,
                                           is_master=not agent and world.is_main, timeout=timedelta(seconds=timeout),
                                           multi_tenant=True)
    except ValueError:
        raise TrainingError(f"MASTER_PORT={os.environ.get('MASTER_PORT')!r} is not a port number") from None
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return torch.distributed.PrefixStore(f"gpt2kit/attempt-{attempt}", store)


def leave(world: World) -> None:
    if world.grouped and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@contextlib.contextmanager
def collective(what: str) -> Iterator[None]:
    """A collective that failed or timed out because of another rank becomes one line that says
    what happened and what to do; other errors pass unchanged."""
    try:
        yield
    except RuntimeError as err:  # gloo and NCCL raise RuntimeErrors (torch's DistError among them)
        if not _lost_contact(err):
            raise
        raise DistributedError(f"rank {os.environ.get('RANK', '?')}: lost contact with the other ranks while {what} "
                               f"({_reason(err)}): another rank died, hung or was stopped (its own error, if any, is "
                               "above); --resume continues from the last checkpoint") from None


def _lost_contact(err: RuntimeError) -> bool:
    return isinstance(err, torch.distributed.DistError) or bool(re.search(r"gloo|NCCL|ProcessGroup", str(err)))


def _reason(err: RuntimeError) -> str:
    """The backend's first sentence, without its source location: "Connection closed by peer
    [127.0.0.1]:6019", "Timed out waiting 600000ms for recv operation to complete"."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    first = re.sub(r"^\[[^\]]*\]\s*", "", first)
    return first.split(". ")[0].rstrip(".")[:160]


def _from_rank0(error: GPT2KitError, world: World) -> GPT2KitError:
    """Rank 0's user error, raised on every rank: rank 0 alone prints it."""
    if not world.is_main:
        error.same_on_every_rank = True
    return error


class RankSlice:
    """A BatchSource of the global batch that keeps this rank's rows: with the same seed, N ranks
    of b rows draw the windows one process of N x b rows draws."""

    def __init__(self, source: BatchSource, world: World) -> None:
        if source.batch_size % world.size:
            raise TrainingError(f"a global batch of {source.batch_size} does not split over {world.size} ranks")
        self.source, self.world = source, world
        self.batch_size = source.batch_size // world.size
        # a source that can read only this rank's rows does (windows: each rank reads its own windows)
        self.reads_own_rows = hasattr(source, "select_rows")
        if self.reads_own_rows:
            n = source.batch_size
            source.select_rows(n * world.rank // world.size, n * (world.rank + 1) // world.size)

    @property
    def batches_per_epoch(self) -> int:
        return self.source.batches_per_epoch

    def next_batch(self) -> Batch:
        batch = self.source.next_batch()
        return batch if self.reads_own_rows else rows_of(batch, self.world)

    def state_dict(self) -> dict:
        return self.source.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.source.load_state_dict(state)

    def __repr__(self) -> str:
        return f"{self.source!r}, rows {self.world.rank} of {self.world.size}"


def rows_of(batch: Batch, world: World) -> Batch:
    """This rank's share of a batch's rows (contiguous, as even as can be; maybe none)."""
    if world.size == 1:
        return batch
    n = batch.input_ids.shape[0]
    lo, hi = n * world.rank // world.size, n * (world.rank + 1) // world.size
    mask = None if batch.attention_mask is None else batch.attention_mask[lo:hi]
    return Batch(batch.input_ids[lo:hi], batch.labels[lo:hi], mask)


class Totals(nn.Module):
    """The module DDP or FSDP wraps: the objective's (summed loss, counted tokens) of a batch."""

    def __init__(self, objective: Objective) -> None:
        super().__init__()
        self.objective = objective

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.objective.totals(batch)


MODEL_KEYS = "objective.model."  # the model's names among the wrapped module's


def wrap(objective: Objective, world: World, device: torch.device, fsdp: bool,
         weights: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """The module to train through: DDP or FSDP2 around Totals(objective). Under FSDP the model
    comes on the meta device (no memory): `fully_shard` cuts it, each rank allocates only its
    shards, and rank 0's `weights` (the whole model, GPT2's names; None on the other ranks) are
    sent one tensor at a time, each rank keeping its part."""
    module = Totals(objective)
    if not world.grouped:
        return module
    if fsdp:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        # the objective's own parameters (if any) are real on every rank: rank 0's are sent with the model's
        own = {k: v.detach() for k, v in module.state_dict().items() if not k.startswith(MODEL_KEYS)}
        # an explicit mesh on the run's device type: without it, a CPU run on a machine with a GPU
        # would put the shards on the GPU under a gloo group
        mesh = init_device_mesh(device.type, (world.size,))
        for block in objective.model.h:
            fully_shard(block, mesh=mesh)
        fully_shard(module, mesh=mesh)  # the rest: embeddings, final LayerNorm, the objective's own
        module.to_empty(device=device)
        send_weights(module, {**own, **{MODEL_KEYS + k: v for k, v in weights.items()}} if world.is_main else None,
                     world, strict=True)
        return module
    from torch.nn.parallel import DistributedDataParallel

    with collective("copying rank 0's weights to every rank"):
        return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)


@contextlib.contextmanager
def gradient_sync(module: nn.Module, sync: bool) -> Iterator[None]:
    """Micro-steps before the last one of an optimizer step keep their gradients local (no
    all-reduce or reduce-scatter): the last one syncs the accumulated sum once."""
    if sync:
        yield
    elif hasattr(module, "no_sync"):  # DDP
        with module.no_sync():
            yield
    elif hasattr(module, "set_requires_gradient_sync"):  # FSDP2
        module.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            module.set_requires_gradient_sync(True)
    else:
        yield


def _is_dtensor(value: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(value, DTensor)


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's whole state dict on the CPU, gathered from shards where FSDP holds them
    (a collective: every rank calls it)."""
    out = {}
    for name, value in model.state_dict().items():
        with collective("gathering the weights to save them"):
            out[name] = (value.full_tensor() if _is_dtensor(value) else value).detach().cpu()
    return out


def full_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """optimizer.state_dict() as one process would have it: shards gathered (a collective)."""
    state = optimizer.state_dict()
    gathered = {}
    for key, entry in state["state"].items():
        gathered[key] = {}
        for name, value in entry.items():
            if _is_dtensor(value):
                with collective("gathering the optimizer state to save it"):
                    value = value.full_tensor()
            gathered[key][name] = value.detach().cpu() if isinstance(value, torch.Tensor) else value
    return {"state": gathered, "param_groups": state["param_groups"]}


def shard_optimizer_state(state: dict, optimizer: torch.optim.Optimizer) -> dict:
    """A whole optimizer state (as saved) cut like the optimizer's sharded parameters, each rank
    keeping its own part (every rank holds the whole, so no data moves)."""
    from torch.distributed.tensor import distribute_tensor

    params = [p for group in optimizer.param_groups for p in group["params"]]
    out = {}
    for key, entry in state["state"].items():
        p = params[int(key)]
        out[key] = {name: (distribute_tensor(v.to(p.dtype), p.device_mesh, p.placements, src_data_rank=None)
                           if _is_dtensor(p) and isinstance(v, torch.Tensor) and v.shape == p.shape else v)
                    for name, v in entry.items()}
    return {"state": out, "param_groups": state["param_groups"]}


def send_weights(module: nn.Module, weights: dict[str, torch.Tensor] | None, world: World, strict: bool) -> None:
    """Rank 0's whole tensors (the wrapped module's names; None on the other ranks) into FSDP's
    shards on every rank, one tensor at a time: no rank but 0 ever holds the whole model."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    with collective("sending rank 0's weights to every rank"):
        set_model_state_dict(module, weights if world.is_main else {},
                             options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=strict))


def warn(world: World, message: str) -> None:
    """A warning printed once for the run (by rank 0)."""
    if world.is_main:
        print(message, file=sys.stderr)
