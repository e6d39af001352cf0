"""Files that survive a crash: write under a temporary name, fsync, rename, fsync the folder.

A rename is atomic, but only durable once the folder holding it is fsynced, and only
meaningful once the renamed file's own data is on disk: without both, a power loss after
"saved" can leave an empty or missing file under the real name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or a folder (a folder's fsync makes the renames inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: str | os.PathLike) -> None:
    """fsync every file and folder under `folder`, deepest first, then `folder` itself."""
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            fsync_path(os.path.join(root, name))
        for name in dirs:
            fsync_path(os.path.join(root, name))
    fsync_path(folder)


def move_into_place(tmp: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Give a finished temporary file or folder its real name, durably: its data first (every
    file in it, for a folder), then the rename over `dest` (a file, or an empty folder), then
    the folder that holds the new name."""
    dest = Path(dest)
    if Path(tmp).is_dir():
        fsync_tree(tmp)
    else:
        fsync_path(tmp)
    os.replace(tmp, dest)
    fsync_path(dest.parent)
    return dest


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Replace `path` with `data` (str is written as UTF-8) so that a crash leaves either the
    old file or the new one, never a mix."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's private 0600 would stay on the renamed file
        return move_into_place(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
