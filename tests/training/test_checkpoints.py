"""Checkpoints survive a kill at every step of their writing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from gpt2kit import atomic
from gpt2kit.training import checkpoints as ckpt


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def write_model(version: str):
    def write(folder: Path) -> None:
        (folder / "model.txt").write_text(version)
    return write


def save(out: Path, step: int, version: str) -> Path:
    return ckpt.save_checkpoint(out, step, write_model(version), {"step": step, "version": version}, keep_last=3)


def checkpoint_versions(out: Path) -> dict[str, str]:
    """What each complete checkpoint holds, after the recovery a resume runs first."""
    ckpt.find_resume(out, "latest")
    found = {}
    for path in ckpt.list_checkpoints(out):
        state = ckpt.load_state(path)
        assert (path / "model.txt").read_text() == state["version"], "model and trainer state from different saves"
        found[path.name] = state["version"]
    return found


def run_killed_at(monkeypatch, k: int, action) -> int:
    """Run `action` with a kill at the k-th file-system step of a save (k = -1: no kill);
    returns how many steps it took."""
    count = 0

    def step(real):
        def wrapped(*args, **kwargs):
            nonlocal count
            count += 1
            if count == k:
                raise Killed
            return real(*args, **kwargs)
        return wrapped

    with monkeypatch.context() as m:
        for owner, name in ((os, "rename"), (shutil, "rmtree"), (torch, "save"), (ckpt, "fsync_path"),
                            (ckpt, "fsync_tree")):
            m.setattr(owner, name, step(getattr(owner, name)))
        try:
            action()
        except Killed:
            pass
    return count


@pytest.mark.parametrize("case", ["new step", "same step again"])
def test_a_kill_at_any_step_of_a_save_leaves_complete_checkpoints(tmp_path, monkeypatch, case):
    def setup(out: Path) -> None:
        save(out, 1, "one")
        save(out, 2, "two")

    step = 3 if case == "new step" else 2
    reference = tmp_path / "reference"
    setup(reference)
    steps = run_killed_at(monkeypatch, -1, lambda: save(reference, step, "new"))
    assert steps >= 5
    for k in range(1, steps + 1):
        out = tmp_path / f"kill-{k}"
        setup(out)
        run_killed_at(monkeypatch, k, lambda out=out: save(out, step, "new"))
        found = checkpoint_versions(out)
        assert found["step-0000001"] == "one", k
        if case == "new step":
            assert found["step-0000002"] == "two", k
            assert found.get("step-0000003", "new") == "new", k
        else:  # the old step 2 or the new one, never none
            assert found["step-0000002"] in ("two", "new"), k
        # the next save cleans up whatever the kill left and works
        save(out, 4, "four")
        assert sorted(os.listdir(ckpt.checkpoint_dir(out)))[-1] == "step-0000004"
        assert not [n for n in os.listdir(ckpt.checkpoint_dir(out)) if n.startswith(".")], k


def test_a_checkpoint_moved_aside_is_put_back_by_a_resume(tmp_path, monkeypatch):
    out = tmp_path / "run"
    save(out, 1, "one")
    real_rename = os.rename

    def kill_second_rename(src, dst):
        if Path(dst).name == "step-0000001":
            raise Killed
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", kill_second_rename)
    with pytest.raises(Killed):
        save(out, 1, "again")
    monkeypatch.undo()
    assert ckpt.list_checkpoints(out) == []  # only the moved-aside copy is left...
    assert ckpt.find_resume(out, "latest").name == "step-0000001"  # ...and the resume puts it back
    assert ckpt.load_state(ckpt.find_resume(out, "latest"))["version"] == "one"


def test_checkpoint_files_and_folders_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    synced: list[str] = []
    real = atomic.fsync_path
    record = lambda p: (synced.append(str(p)), real(p))  # noqa: E731
    monkeypatch.setattr(atomic, "fsync_path", record)
    monkeypatch.setattr(ckpt, "fsync_path", record)
    renamed_after: list[int] = []
    real_rename = os.rename
    monkeypatch.setattr(os, "rename", lambda a, b: (renamed_after.append(len(synced)), real_rename(a, b))[1])
    final = save(tmp_path / "run", 1, "one")
    tmp_state = [s for s in synced if s.endswith(ckpt.STATE_FILE)]
    tmp_model = [s for s in synced if s.endswith("model.txt")]
    assert tmp_state and tmp_model
    first_rename = renamed_after[0]
    assert synced.index(tmp_state[0]) < first_rename and synced.index(tmp_model[0]) < first_rename
    assert str(final.parent) in synced[first_rename:]  # the rename itself made durable
