"""What a weights file holds, told from its bytes; and the file names a model folder may use.

Names alone mislead: OpenAI's TensorFlow checkpoints and MindSpore's both end in `.ckpt`
(`model.ckpt.index` beside `gpt2.ckpt`), and both ship an `hparams.json`. Each format
has a signature in its first or last bytes, read here without loading the file.

File names read from inside a model folder (the `checkpoint` file of a TensorFlow
checkpoint, the shard index of sharded safetensors) are resolved inside that folder
only: an absolute path or `..` that leads out of it is refused.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

from gpt2kit.errors import WeightsError
from gpt2kit.weights.tensorbundle import MAGIC

LEGACY_TORCH_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
KINDS = {
    "safetensors": "safetensors",
    "torch": "a PyTorch state dict",
    "tf-index": "a TensorFlow checkpoint index",
    "mindspore": "a MindSpore checkpoint",
    "gguf": "a GGUF file",
    "llmc": "an llm.c model.bin",
    "nanogpt": "a nanoGPT ckpt.pt",
    "hdf5": "an HDF5 file (Keras .h5)",
}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
LLMC_MAGIC = 20240326  # the first int32 of llm.c's model files (its tokenizer file starts with 20240328)
LLMC_TOKENIZER_MAGIC = 20240328


def file_kind(path: Path) -> str | None:
    """"safetensors", "torch", "nanogpt" (a torch zip whose pickle names `model_args`), "tf-index"
    (TensorBundle .index), "mindspore" (.ckpt protobuf), "gguf", "llmc", "hdf5", "llmc-tokenizer" (no model:
    llm.c's gpt2_tokenizer.bin), or None."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(4096)
            f.seek(max(size - 8, 0))
            tail = f.read(8)
    except OSError:
        return None
    if head.startswith(b"GGUF"):
        return "gguf"
    if head.startswith(HDF5_SIGNATURE):  # Keras writes no user block, so the signature is at offset 0
        return "hdf5"
    if _is_safetensors(head, size):
        return "safetensors"
    # llm.c's files open with a magic int32 and nothing else marks them (a truncated header is
    # still llm.c's: its reader says what is missing)
    if head[:4] == LLMC_MAGIC.to_bytes(4, "little"):
        return "llmc"
    if head[:4] == LLMC_TOKENIZER_MAGIC.to_bytes(4, "little"):
        return "llmc-tokenizer"
    torch_kind = _torch_kind(path, head)
    if torch_kind is not None:
        return torch_kind
    if size >= 48 and struct.unpack("<Q", tail)[0] == MAGIC:  # leveldb table footer
        return "tf-index"
    if _is_mindspore(head):
        return "mindspore"
    return None


def _is_safetensors(head: bytes, size: int) -> bool:
    # u64 little-endian header length, then the JSON header itself
    if len(head) < 9:
        return False
    n = struct.unpack_from("<Q", head)[0]
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _torch_kind(path: Path, head: bytes) -> str | None:
    if head.startswith(b"PK\x03\x04"):  # torch.save's zip archive: <name>/data.pkl inside
        try:
            with zipfile.ZipFile(path) as z:
                pickle = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                if pickle is None:
                    return None
                # nanoGPT's train.py saves its hyperparameters under "model_args": the pickle's bytes
                # name it (read, never unpickled: only weights_only loads unpickle)
                return "nanogpt" if b"model_args" in z.read(pickle) else "torch"
        except (zipfile.BadZipFile, OSError):
            return None
    # the legacy format: a pickle (protocol 2+) that starts with torch.save's magic number
    return "torch" if head[:1] == b"\x80" and LEGACY_TORCH_MAGIC in head[:32] else None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated varint")


def _is_mindspore(head: bytes) -> bool:
    # Checkpoint { Value value = 1 } with Value { string tag = 1; TensorProto tensor = 2 }:
    # 0x0a <len> 0x0a <tag length> <UTF-8 tag> 0x12 ...
    try:
        if head[:1] != b"\x0a":
            return False
        _, pos = _varint(head, 1)
        if head[pos:pos + 1] != b"\x0a":
            return False
        n, pos = _varint(head, pos + 1)
        if not 0 < n <= 1024 or pos + n >= len(head):
            return False
        head[pos:pos + n].decode("utf-8")
        return head[pos + n:pos + n + 1] == b"\x12"
    except (ValueError, UnicodeDecodeError):
        return False


def inside(folder: Path, name: str, source: Path, what: str) -> Path:
    """`name` (read from the file `source`) as a path inside `folder`; refused when it leads out.

    The check is on the name, not on resolved links: a folder of symlinks (as the Hugging Face
    cache keeps its snapshots) stays loadable, and no name from a file can reach beyond it."""
    if not name or "\x00" in name:
        raise WeightsError(f"{source}: {what} {name!r} is not a file name")
    relative = os.path.normpath(name)
    if os.path.isabs(name) or relative == ".." or relative.startswith(".." + os.sep):
        raise WeightsError(f"{source}: {what} '{name}' leaves the folder {folder} (only files inside it are read)")
    return folder / relative
