"""TensorFlow checkpoints (TensorBundle V2), read and written without TensorFlow.

`<prefix>.index` is a leveldb-format table mapping each tensor name to a BundleEntryProto
(dtype, shape, shard, offset, size, crc32c); key "" holds the BundleHeaderProto. The bytes
of each tensor sit in `<prefix>.data-NNNNN-of-MMMMM`, checked against the entry's CRC32C.

Table layout (leveldb doc/table_format.md): data blocks, a metaindex block, an index block
whose entries point at the data blocks, and a 48-byte footer ending in a magic number.
Each block is followed by a compression byte (0 none, 1 Snappy) and a masked CRC32C.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numpy as np
import torch

from gpt2kit.errors import WeightsError
from gpt2kit.weights import protobuf as pb

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER = 5  # compression type + masked crc
MASK_DELTA = 0xA282EAD8
# TensorFlow DataType enum -> torch dtype
DTYPES = {1: torch.float32, 2: torch.float64, 3: torch.int32, 9: torch.int64, 14: torch.bfloat16,
          19: torch.float16}
DTYPE_IDS = {v: k for k, v in DTYPES.items()}
BLOCK_SIZE = 262144  # TensorFlow's table option (leveldb's own default is 4096)
RESTART_INTERVAL = 16


def masked_crc(data: bytes | memoryview) -> int:
    crc = google_crc32c.value(bytes(data))
    return ((crc >> 15 | crc << 17) + MASK_DELTA) & 0xFFFFFFFF


# ---- leveldb table ---------------------------------------------------------------------------------


def _read_handle(data: memoryview, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = pb.read_varint(data, pos)
    size, pos = pb.read_varint(data, pos)
    return (offset, size), pos


def _block_entries(block: memoryview, where: str) -> list[tuple[bytes, memoryview]]:
    if len(block) < 4:
        raise WeightsError(f"{where}: block too short")
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    if end < 0:
        raise WeightsError(f"{where}: corrupt block (restart array larger than the block)")
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = pb.read_varint(block, pos)
        unshared, pos = pb.read_varint(block, pos)
        value_len, pos = pb.read_varint(block, pos)
        if shared > len(key) or pos + unshared + value_len > end:
            raise WeightsError(f"{where}: corrupt block entry")
        key = key[:shared] + bytes(block[pos:pos + unshared])
        pos += unshared
        entries.append((key, block[pos:pos + value_len]))
        pos += value_len
    return entries


def snappy_decompress(data: bytes | memoryview) -> bytes:
    """Snappy's raw format: a varint length, then literals and back-references."""
    data = memoryview(data)
    length, pos = pb.read_varint(data, 0)
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            n = tag >> 2
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(data[pos:pos + extra], "little")
                pos += extra
            n += 1
            out += data[pos:pos + n]
            pos += n
            continue
        if kind == 1:
            n, offset = 4 + ((tag >> 2) & 7), (tag >> 5) << 8 | data[pos]
            pos += 1
        elif kind == 2:
            n, offset = (tag >> 2) + 1, int.from_bytes(data[pos:pos + 2], "little")
            pos += 2
        else:
            n, offset = (tag >> 2) + 1, int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
        if offset == 0 or offset > len(out):
            raise ValueError("bad snappy back-reference")
        for _ in range(n):  # byte by byte: a copy may overlap its own output
            out.append(out[-offset])
    if len(out) != length:
        raise ValueError("snappy length mismatch")
    return bytes(out)


def read_table(path: Path) -> list[tuple[bytes, memoryview]]:
    """All (key, value) pairs of a leveldb table file, in key order, every block CRC-checked."""
    data = memoryview(path.read_bytes())
    if len(data) < FOOTER_SIZE:
        raise WeightsError(f"{path}: truncated index file ({len(data)} bytes, smaller than its 48-byte footer)")
    footer = data[-FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != MAGIC:
        raise WeightsError(f"{path}: not a TensorFlow checkpoint index (wrong footer magic number)")
    try:
        _, pos = _read_handle(footer, 0)
        index_handle, _ = _read_handle(footer, pos)
    except pb.ProtobufError:
        raise WeightsError(f"{path}: corrupt footer") from None

    def block(handle: tuple[int, int], what: str) -> memoryview:
        offset, size = handle
        if offset + size + BLOCK_TRAILER > len(data) - FOOTER_SIZE:
            raise WeightsError(f"{path}: truncated index file ({what} runs past the end)")
        contents = data[offset:offset + size]
        kind = data[offset + size]
        stored = struct.unpack_from("<I", data, offset + size + 1)[0]
        if masked_crc(data[offset:offset + size + 1]) != stored:
            raise WeightsError(f"{path}: CRC mismatch in {what}: the index file is corrupt")
        if kind == 1:
            try:
                return memoryview(snappy_decompress(contents))
            except (ValueError, IndexError, pb.ProtobufError):
                raise WeightsError(f"{path}: corrupt Snappy-compressed {what}") from None
        if kind != 0:
            raise WeightsError(f"{path}: {what} uses unknown compression type {kind}")
        return contents

    entries = []
    try:
        for _, handle_bytes in _block_entries(block(index_handle, "index block"), f"{path} index block"):
            handle, _ = _read_handle(handle_bytes, 0)
            entries += _block_entries(block(handle, "data block"), f"{path} data block")
    except pb.ProtobufError as err:
        raise WeightsError(f"{path}: corrupt index file ({err})") from None
    return entries


def _build_block(entries: list[tuple[bytes, bytes]]) -> bytes:
    out, restarts, last = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % RESTART_INTERVAL == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(last)) and key[shared] == last[shared]:
                shared += 1
        out += pb.write_varint(shared) + pb.write_varint(len(key) - shared) + pb.write_varint(len(value))
        out += key[shared:] + value
        last = key
    restarts = restarts or [0]
    for r in restarts:
        out += struct.pack("<I", r)
    return bytes(out + struct.pack("<I", len(restarts)))


def _separator(start: bytes, limit: bytes) -> bytes:
    """A short key >= start and < limit (leveldb's FindShortestSeparator), for index entries."""
    i = 0
    while i < min(len(start), len(limit)) and start[i] == limit[i]:
        i += 1
    if i < min(len(start), len(limit)) and start[i] < 0xFF and start[i] + 1 < limit[i]:
        return start[:i] + bytes([start[i] + 1])
    return start


def _successor(key: bytes) -> bytes:
    """A short key >= key (leveldb's FindShortSuccessor), for the last index entry."""
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes([byte + 1])
    return key


def write_table(path: Path, entries: list[tuple[bytes, bytes]]) -> None:
    """A leveldb table of sorted (key, value) pairs, uncompressed, laid out as TensorFlow's
    table builder lays it out (same block size, restart interval and index keys)."""
    out = bytearray()

    def put_block(contents: bytes) -> bytes:
        handle = pb.write_varint(len(out)) + pb.write_varint(len(contents))
        out.extend(contents + b"\x00")
        out.extend(struct.pack("<I", masked_crc(contents + b"\x00")))
        return handle

    index: list[tuple[bytes, bytes]] = []
    chunk: list[tuple[bytes, bytes]] = []
    pending: bytes | None = None  # handle of the last finished block, waiting for its index key
    chunk_last = b""  # the last key of that block
    for key, value in entries:
        if pending is not None:
            index.append((_separator(chunk_last, key), pending))
            pending = None
        chunk.append((key, value))
        if len(_build_block(chunk)) >= BLOCK_SIZE:
            chunk_last, pending, chunk = chunk[-1][0], put_block(_build_block(chunk)), []
    if chunk:
        chunk_last, pending = chunk[-1][0], put_block(_build_block(chunk))
    if pending is not None:
        index.append((_successor(chunk_last), pending))
    meta_handle = put_block(_build_block([]))
    index_handle = put_block(_build_block(index))
    footer = (meta_handle + index_handle).ljust(40, b"\x00") + struct.pack("<Q", MAGIC)
    path.write_bytes(bytes(out) + footer)


# ---- the bundle ---------------------------------------------------------------------------------------


@dataclass
class BundleEntry:
    dtype: torch.dtype
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc: int


def _entry(name: str, raw: memoryview, path: Path) -> BundleEntry:
    f = pb.parse(raw)
    if 7 in f:
        raise WeightsError(f"{path}: tensor '{name}' is partitioned into slices, which gpt2kit does not read")
    dtype_id = f.get(1, [0])[-1]
    if dtype_id not in DTYPES:
        raise WeightsError(f"{path}: tensor '{name}' has unknown or unsupported TensorFlow dtype {dtype_id}")
    dims = []
    for shape in f.get(2, []):
        for dim in pb.parse(shape).get(2, []):
            dims.append(pb.to_signed(pb.parse(dim).get(1, [0])[-1]))
    return BundleEntry(DTYPES[dtype_id], tuple(dims), f.get(3, [0])[-1], f.get(4, [0])[-1], f.get(5, [0])[-1],
                       f.get(6, [0])[-1])


class TensorBundle:
    """Lazy reader: `shape(name)` from the index, `load(name)` reads and checks one tensor."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        index = Path(f"{prefix}.index")
        if not index.is_file():
            raise WeightsError(f"{index}: checkpoint index not found")
        self.index_path = index
        self.entries: dict[str, BundleEntry] = {}
        num_shards = 1
        try:
            for key, value in read_table(index):
                if key == b"":
                    header = pb.parse(value)
                    num_shards = header.get(1, [1])[-1]
                    if header.get(2, [0])[-1] != 0:
                        raise WeightsError(f"{index}: big-endian checkpoints are not supported")
                    continue
                name = key.decode("utf-8")
                self.entries[name] = _entry(name, value, index)
        except (pb.ProtobufError, TypeError, UnicodeDecodeError) as err:
            raise WeightsError(f"{index}: corrupt entry ({err or type(err).__name__})") from None
        self.shards = [Path(f"{prefix}.data-{i:05d}-of-{num_shards:05d}") for i in range(num_shards)]

    def names(self) -> list[str]:
        return list(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name].shape

    def load(self, name: str) -> torch.Tensor:
        e = self.entries[name]
        if e.shard >= len(self.shards) or not self.shards[e.shard].is_file():
            raise WeightsError(f"{self.index_path}: data shard {self.shards[min(e.shard, len(self.shards) - 1)].name} "
                               f"for tensor '{name}' is missing")
        shard = self.shards[e.shard]
        # sizes are checked before reading, so a corrupt entry cannot ask for an absurd allocation
        needed = (int(np.prod(e.shape)) if e.shape else 1) * torch.empty(0, dtype=e.dtype).element_size()
        if needed != e.size:
            raise WeightsError(f"{self.index_path}: tensor '{name}' holds {e.size} bytes, its shape {e.shape} "
                               f"needs {needed}")
        if e.offset + e.size > shard.stat().st_size:
            raise WeightsError(f"{shard}: truncated data shard (tensor '{name}' runs past its end)")
        raw = bytearray(e.size)
        with shard.open("rb") as f:
            f.seek(e.offset)
            f.readinto(raw)
        if masked_crc(raw) != e.crc:
            raise WeightsError(f"{shard}: CRC mismatch for tensor '{name}': the data shard is corrupt")
        return torch.frombuffer(raw, dtype=e.dtype).reshape(e.shape) if e.size else torch.empty(e.shape, dtype=e.dtype)


def write_bundle(prefix: Path, tensors: dict[str, Callable[[], torch.Tensor]]) -> None:
    """One data shard plus the index, keys sorted as leveldb requires; each tensor is made
    (by calling its entry) only when it is written. Written into the temporary folder of
    `atomic_folder`, which makes the files durable before they take their names."""
    data_path = Path(f"{prefix}.data-00000-of-00001")
    entries: list[tuple[bytes, bytes]] = []
    # BundleHeaderProto{num_shards: 1, version{producer: 1}}; little-endian is the default (0)
    header = pb.field_varint(1, 1) + pb.field_bytes(3, pb.field_varint(1, 1))
    entries.append((b"", header))
    offset = 0
    with data_path.open("wb") as f:
        for name in sorted(tensors, key=lambda n: n.encode("utf-8")):
            t = tensors[name]().to("cpu").contiguous()
            if t.dtype not in DTYPE_IDS:
                raise WeightsError(f"cannot write tensor '{name}' of dtype {t.dtype} to a TensorFlow checkpoint")
            raw = t.reshape(-1).view(torch.uint8).numpy().tobytes()
            f.write(raw)
            dims = b"".join(pb.field_bytes(2, pb.field_varint(1, d)) for d in t.shape)
            entry = (pb.field_varint(1, DTYPE_IDS[t.dtype]) + pb.field_bytes(2, dims)
                     + (pb.field_varint(4, offset) if offset else b"") + pb.field_varint(5, len(raw))
                     + pb.field_fixed32(6, masked_crc(raw)))
            entries.append((name.encode("utf-8"), entry))
            offset += len(raw)
    write_table(Path(f"{prefix}.index"), entries)
