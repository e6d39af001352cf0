"""The protobuf wire format, just enough to read and write TensorFlow's bundle entries and
MindSpore checkpoints without either framework (or the protobuf package).

A message is a sequence of (field number, wire type, value); `parse` returns the values of
each field in order, leaving nested messages as bytes for the caller to parse in turn.
"""

from __future__ import annotations

import struct

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    pass


def read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint longer than 10 bytes")


def write_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # negative int64s are ten-byte two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def parse(data: bytes | memoryview) -> dict[int, list]:
    """Field number -> values: ints for varint and fixed fields, memoryviews for length-delimited."""
    data = memoryview(data)
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0")
        if wire == VARINT:
            value, pos = read_varint(data, pos)
        elif wire == FIXED64:
            if pos + 8 > len(data):
                raise ProtobufError("truncated fixed64")
            value = struct.unpack_from("<Q", data, pos)[0]
            pos += 8
        elif wire == LENGTH:
            size, pos = read_varint(data, pos)
            if pos + size > len(data):
                raise ProtobufError("truncated length-delimited field")
            value = data[pos:pos + size]
            pos += size
        elif wire == FIXED32:
            if pos + 4 > len(data):
                raise ProtobufError("truncated fixed32")
            value = struct.unpack_from("<I", data, pos)[0]
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def packed_varints(values: list) -> list[int]:
    """Repeated integer fields arrive packed (one length-delimited run) or one by one."""
    out: list[int] = []
    for v in values:
        if isinstance(v, int):
            out.append(v)
        else:
            pos = 0
            while pos < len(v):
                n, pos = read_varint(v, pos)
                out.append(n)
    return out


def to_signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


# ---- writing ----------------------------------------------------------------------------------------


def field_varint(number: int, value: int) -> bytes:
    return write_varint(number << 3 | VARINT) + write_varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    return write_varint(number << 3 | LENGTH) + write_varint(len(value)) + value


def field_fixed32(number: int, value: int) -> bytes:
    return write_varint(number << 3 | FIXED32) + struct.pack("<I", value)
