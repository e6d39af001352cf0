"""TrainConfig: paths of any kind, one clear error for a value that is not one."""

from __future__ import annotations

from pathlib import Path, PurePath

import pytest

from gpt2kit.errors import TrainingError
from gpt2kit.training import TrainConfig


class Where:
    """An os.PathLike that is not a pathlib path."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return self.path


@pytest.mark.parametrize("kind", [str, Path, Where], ids=["str", "Path", "PathLike"])
def test_paths_may_be_str_or_pathlike(kind):
    config = TrainConfig(data=kind("data.txt"), out=kind("runs/1"), model=kind("models/m"), val_file=kind("v.txt"),
                         cache_dir=kind("cache"), resume=kind("runs/1/checkpoints/step-0000002"), max_steps=1)
    assert (config.data, config.out, config.val_file, config.cache_dir) == (
        Path("data.txt"), Path("runs/1"), Path("v.txt"), Path("cache"))
    assert config.model == "models/m" and config.resume == str(PurePath("runs/1/checkpoints/step-0000002"))
    assert config.to_dict()["cache_dir"] == "cache"  # JSON-ready, as checkpoints store it


def test_a_value_that_is_not_a_path_is_one_clear_error():
    with pytest.raises(TrainingError, match="cache_dir must be a path"):
        TrainConfig(data="data.txt", out="runs/1", from_scratch="tiny", cache_dir=3, max_steps=1)
