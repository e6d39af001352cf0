"""Token files: a small header, then uint16 token ids, read back as a memory map.

Header (64 bytes): magic b"GPT2KTOK", uint32 version, uint32 bytes per token (2),
uint64 token count, 32-byte fingerprint of the source it was made from (so a cache
entry is reused only while its source is unchanged), zero padding.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from gpt2kit.atomic import move_into_place
from gpt2kit.errors import DataError

MAGIC = b"GPT2KTOK"
VERSION = 1
HEADER = struct.Struct("<8sIIQ32s")
HEADER_SIZE = 64


def write_tokens(path: str | os.PathLike, chunks: Iterable[np.ndarray], fingerprint: bytes = b"") -> int:
    """Write token ids (each chunk an int array < 65536) atomically; returns the count.

    As gpt2kit.atomic.atomic_write does, but streamed: the ids of a large corpus are never held at once."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    try:
        with tmp.open("wb") as f:
            f.write(b"\0" * HEADER_SIZE)
            for chunk in chunks:
                arr = np.asarray(chunk)
                if arr.size and (arr.min() < 0 or arr.max() > 0xFFFF):
                    raise DataError(f"{path}: token ids must lie in 0..65535 to be stored as uint16")
                f.write(arr.astype("<u2").tobytes())
                count += arr.size
            f.seek(0)
            f.write(HEADER.pack(MAGIC, VERSION, 2, count, fingerprint.ljust(32, b"\0")[:32]).ljust(HEADER_SIZE, b"\0"))
        move_into_place(tmp, path)
    except OSError as err:
        if err.filename not in (None, str(tmp), str(path)):
            raise  # reading a source file: its own name says which
        # a full disk, permissions: named by the token file, not its temporary name
        raise DataError(f"{path}: could not write the token file ({err.strerror or err}); free some space or "
                        "choose another --cache-dir") from None
    finally:
        tmp.unlink(missing_ok=True)
    return count


def is_token_file(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == MAGIC
    except OSError:
        return False


def read_header(path: str | os.PathLike) -> tuple[int, bytes]:
    """(token count, fingerprint), after checking magic, version and size."""
    path = Path(path)
    with path.open("rb") as f:
        raw = f.read(HEADER_SIZE)
    if len(raw) < HEADER_SIZE or raw[:8] != MAGIC:
        raise DataError(f"{path}: not a gpt2kit token file (bad magic number)")
    _, version, width, count, fingerprint = HEADER.unpack(raw[:HEADER.size])
    if version != VERSION or width != 2:
        raise DataError(f"{path}: token file version {version} / width {width} is not supported (expected "
                        f"{VERSION} / 2); delete it to rebuild")
    if path.stat().st_size != HEADER_SIZE + 2 * count:
        raise DataError(f"{path}: truncated token file ({count} tokens announced); delete it to rebuild")
    return count, fingerprint


def open_tokens(path: str | os.PathLike) -> np.ndarray:
    """The token ids as a read-only memory-mapped uint16 array."""
    count, _ = read_header(path)
    if count == 0:
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_SIZE, shape=(count,))
