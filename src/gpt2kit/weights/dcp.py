"""Sharded checkpoints of torch.distributed.checkpoint (DCP), read safely and as a model.

`gpt2kit finetune --fsdp --sharded-checkpoints` writes checkpoints in which every rank saved its
own shards (training/sharded.py): a folder with config.json and the tokenizer files (no weights)
and `shards/`, DCP's files: one `__R_0.distcp` per rank and a `.metadata` index. Read as a model
(`--model run/checkpoints/step-N`, `gpt2kit convert`), the weights are put back together from the
shards in one process.

What reading unpickles: DCP stores each tensor with torch.save and loads it with
torch.load(weights_only=True), but its `.metadata` index is a pickle that DCP reads with plain
pickle.load, and values other than tensors would be pickles loaded with weights_only=False.
gpt2kit writes tensors only (what else a checkpoint needs is in trainer_state.pt, read with
weights_only=True), reads `.metadata` with an unpickler that admits nothing but DCP's own
metadata classes, torch.Size, dtypes and paths, and refuses a checkpoint whose index lists
values other than tensors.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from gpt2kit.config import GPT2Config, read_json
from gpt2kit.errors import WeightsError

SHARDS = "shards"  # the DCP folder inside a sharded checkpoint
MODEL_PREFIX = "model.objective.model."  # the model's tensors among the training module's

_ALLOWED = {
    "torch.distributed.checkpoint.metadata": {"Metadata", "MetadataIndex", "StorageMeta", "TensorProperties",
                                              "TensorStorageMetadata", "ChunkStorageMetadata",
                                              "BytesStorageMetadata", "_MEM_FORMAT_ENCODING"},
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "torch": {"Size"},
    "pathlib": {"PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath"},
    "collections": {"OrderedDict"},
}


class _MetadataUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if name not in _ALLOWED.get(module, ()):
            raise WeightsError(f"{self.path}: refers to {module}.{name}, which a DCP index of tensors does not hold; "
                               "not loading it (a sharded checkpoint is read only when it holds tensors alone)")
        return super().find_class(module, name)


def reader(folder: Path):
    """DCP's FileSystemReader for `folder`, its index read by the restricted unpickler above."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata

    class SafeReader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any):
            path = Path(self._get_metadata_path(kwargs.get("rank")))
            try:
                with open(path, "rb") as f:
                    metadata = _MetadataUnpickler(f, path).load()
            except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError) as err:
                raise WeightsError(f"{path}: unreadable DCP index ({type(err).__name__}); the checkpoint is "
                                   "incomplete or damaged") from None
            objects = [k for k, v in metadata.state_dict_metadata.items() if isinstance(v, BytesStorageMetadata)]
            if objects:
                raise WeightsError(f"{path}: holds pickled values besides tensors ({objects[0]}, ...); gpt2kit's "
                                   "sharded checkpoints hold tensors only, so it is not loaded")
            from torch.distributed.checkpoint.metadata import StorageMeta

            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return SafeReader(str(folder))


def is_sharded_checkpoint(path: Path) -> bool:
    return path.is_dir() and (path / SHARDS / ".metadata").is_file()


def read_index(folder: Path):
    """The checked index (DCP Metadata) of a DCP folder."""
    return reader(folder).read_metadata()


def read_model_tensors(folder: Path, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The whole model's tensors (GPT2's own names) put together from every rank's shards, in this
    process alone (the optimizer's state is not read)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    shards = folder / SHARDS
    index = read_index(shards)
    wanted = {k: v for k, v in index.state_dict_metadata.items()
              if k.startswith(MODEL_PREFIX) and isinstance(v, TensorStorageMetadata)}
    if not wanted:
        raise WeightsError(f"{shards}: no model weights in this DCP checkpoint")
    tensors = {k.removeprefix(MODEL_PREFIX): torch.empty(v.size, dtype=v.properties.dtype) for k, v in wanted.items()}
    target = {"model": {"objective.model." + k: t for k, t in tensors.items()}}
    # no_dist: read by this process alone, even under torchrun (rank 0 writing the final model); DCP
    # warns that it "assumes the intent" each time
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        dcp.load(target, storage_reader=reader(shards), no_dist=True)
    return {k: (t if dtype is None else t.to(dtype)) for k, t in tensors.items()}


def read_dcp(path: Path, dtype: torch.dtype | None) -> tuple[GPT2Config, dict[str, torch.Tensor]]:
    """A sharded training checkpoint as (config, state dict): the weights reader of format "dcp"."""
    folder = path if path.is_dir() else path.parent
    if not (folder / "config.json").is_file():
        raise WeightsError(f"{folder}: no config.json beside {SHARDS}/ (a sharded checkpoint holds the model's shape "
                           "there)")
    config = GPT2Config.from_hf_dict(read_json(folder / "config.json"), source=str(folder / "config.json"))
    return config, read_model_tensors(folder, dtype)
