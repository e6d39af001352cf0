"""Training checkpoints: a loadable model folder plus the trainer's state, written atomically.

Each checkpoint is `OUT/checkpoints/step-NNNNNNN/`, assembled under a hidden temporary
name, fsynced and renamed into place, so a kill during saving leaves the previous
checkpoints as they were and no half-written one under a real name. Saving a step that
exists already moves the old one aside first; a kill between the two renames is repaired
by `recover()` on the next save or resume. `trainer_state.pt` holds everything
else a run needs to continue exactly: optimizer, step, epoch, data position, RNG states,
LoRA adapters. It is read back with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from gpt2kit.atomic import fsync_path, fsync_tree
from gpt2kit.errors import TrainingError

STATE_FILE = "trainer_state.pt"
PREFIX = "step-"
TMP = ".tmp-"  # a checkpoint being written
REPLACED = ".replaced-"  # a complete checkpoint moved aside while the same step is saved again


def checkpoint_dir(out: Path) -> Path:
    return out / "checkpoints"


def list_checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoint_dir(out)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.removeprefix(PREFIX)))


def save_checkpoint(out: Path, step: int, write_model, state: dict[str, Any], keep_last: int) -> Path:
    """Write `write_model(folder)` and the trainer state as checkpoint `step`; keep the newest `keep_last`."""
    tmp = begin_checkpoint(out, step)
    write_model(tmp)
    return commit_checkpoint(out, step, tmp, state, keep_last)


def begin_checkpoint(out: Path, step: int) -> Path:
    """The empty temporary folder checkpoint `step` is assembled in (the files of every rank, when
    each writes its shards)."""
    root = checkpoint_dir(out)
    root.mkdir(parents=True, exist_ok=True)
    recover(out)
    for stale in root.glob(f"{TMP}*"):  # half-written by a run killed while saving
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f"{TMP}{PREFIX}{step:07d}-{os.getpid()}"
    tmp.mkdir()
    return tmp


def commit_checkpoint(out: Path, step: int, tmp: Path, state: dict[str, Any], keep_last: int) -> Path:
    """Add the trainer state to the folder `begin_checkpoint` made, and give it its real name at once."""
    root = checkpoint_dir(out)
    final = root / f"{PREFIX}{step:07d}"
    torch.save(state, tmp / STATE_FILE)
    fsync_tree(tmp)  # complete on disk before it can take the real name
    old = root / f"{REPLACED}{final.name}-{os.getpid()}"
    if final.exists():  # the same step saved again: the new one replaces it only once complete
        os.rename(final, old)  # a kill right after this leaves `old`, which recover() puts back
        fsync_path(root)
    os.rename(tmp, final)  # the moment the checkpoint exists
    fsync_path(root)
    shutil.rmtree(old, ignore_errors=True)
    for old in list_checkpoints(out)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def recover(out: Path) -> list[Path]:
    """Put back a checkpoint that was moved aside to be replaced when the run was killed
    before its replacement took the name; a replacement that made it wins."""
    root = checkpoint_dir(out)
    restored = []
    for moved in sorted(root.glob(f"{REPLACED}*")) if root.is_dir() else []:
        name = moved.name.removeprefix(REPLACED).rsplit("-", 1)[0]
        target = root / name
        if not target.exists() and (moved / STATE_FILE).is_file():
            os.rename(moved, target)
            fsync_path(root)
            restored.append(target)
        else:
            shutil.rmtree(moved, ignore_errors=True)
    return restored


def find_resume(out: Path, resume: str) -> Path:
    """The checkpoint `--resume` names: "latest" in OUT, or a checkpoint folder."""
    if resume == "latest":
        recover(out)
        found = list_checkpoints(out)
        if not found:
            raise TrainingError(f"{out}: no checkpoint with trainer state to resume from")
        return found[-1]
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise TrainingError(f"{path}: no {STATE_FILE} here, so there is nothing to resume from")
    return path


def drop_after(out: Path, step: int) -> list[Path]:
    """Remove the checkpoints in OUT later than `step`: a run resumed from an older checkpoint
    replaces what came after it (as it replaces the metrics logged after it)."""
    later = [p for p in list_checkpoints(out) if int(p.name.removeprefix(PREFIX)) > step]
    for path in later:
        shutil.rmtree(path)
    return later


def load_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable state is one clear error
        raise TrainingError(f"{path / STATE_FILE}: unreadable trainer state ({type(err).__name__})") from None
