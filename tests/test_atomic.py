"""Crash-safe writes: data and renames reach the disk in the order that keeps files whole."""

from __future__ import annotations

import os

import pytest

from gpt2kit import atomic
from gpt2kit.weights import folder


@pytest.fixture
def journal(monkeypatch):
    """Records fsyncs and renames in the order they happen."""
    events: list[tuple[str, str]] = []
    real_fsync, real_rename, real_replace = atomic.fsync_path, os.rename, os.replace

    def fsync(path):
        events.append(("fsync", os.path.realpath(path)))
        real_fsync(path)

    def rename(src, dst):
        events.append(("rename", os.path.realpath(dst)))
        real_rename(src, dst)

    def replace(src, dst):
        events.append(("rename", os.path.realpath(dst)))
        real_replace(src, dst)

    for owner in (atomic, folder):
        monkeypatch.setattr(owner, "fsync_path", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_atomic_write_syncs_the_file_before_and_the_folder_after_the_rename(tmp_path, journal):
    target = tmp_path / "metrics.jsonl"
    target.write_text("old\n")
    atomic.atomic_write(target, "new\n")
    assert target.read_text() == "new\n"
    assert journal[-2:] == [("rename", str(target)), ("fsync", str(tmp_path))]
    assert [n for n in os.listdir(tmp_path)] == ["metrics.jsonl"]  # no temporary left


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    target.write_text("old")

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write(target, "new")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


@pytest.mark.parametrize("exists", [False, True])
def test_model_folders_are_synced_before_they_take_their_name(tmp_path, journal, exists):
    target = tmp_path / "model"
    if exists:
        target.mkdir()

    def write(tmp):
        (tmp / "config.json").write_text("{}")
        (tmp / "model.safetensors").write_bytes(b"weights")

    folder.atomic_folder(target, write)
    renames = [i for i, (kind, _) in enumerate(journal) if kind == "rename"]
    synced_files = [i for i, (kind, p) in enumerate(journal)
                    if kind == "fsync" and p.endswith((".json", ".safetensors"))]
    assert len(synced_files) == 2 and max(synced_files) < min(renames)
    # the rename is made durable: the folder holding the new names is synced after the last rename
    holder = str(target if exists else tmp_path)
    assert ("fsync", holder) in journal[max(renames):]


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_move_into_place_syncs_the_data_then_the_rename(tmp_path, journal, kind):
    tmp, dest = tmp_path / ".model.part", tmp_path / "model"
    if kind == "file":
        tmp.write_bytes(b"weights")
        synced = str(tmp)
    else:
        tmp.mkdir()
        (tmp / "a.bin").write_bytes(b"weights")
        dest.mkdir()  # an empty folder is replaced
        synced = str(tmp / "a.bin")
    assert atomic.move_into_place(tmp, dest) == dest
    assert journal.index(("fsync", synced)) < journal.index(("rename", str(dest)))
    assert journal[-1] == ("fsync", str(tmp_path))
    assert os.listdir(tmp_path) == ["model"]
