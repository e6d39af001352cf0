"""OpenAI's original GPT-2 release: a TensorFlow checkpoint folder, read and written without TensorFlow.

Folder: hparams.json, checkpoint (names the model prefix), model.ckpt.index,
model.ckpt.data-00000-of-00001, encoder.json, vocab.bpe (model.ckpt.meta, the TF graph,
is not needed to load the weights: gpt-2 and gpt-2-simple build the graph from code).

gpt-2-simple's run folders (checkpoint/run1/) are the same layout with several saves,
`model-<step>.*`, a `counter` file holding the last step, and a `checkpoint` file naming the
latest: that one is read unless a step is asked for.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path, PurePosixPath

import torch

from gpt2kit.config import GPT2Config
from gpt2kit.errors import WeightsError
from gpt2kit.weights.files import file_kind, inside
from gpt2kit.weights.layouts import OPENAI, collect
from gpt2kit.weights.tensorbundle import TensorBundle, write_bundle

STEP_PREFIX = re.compile(r"^(?P<name>.+)-(?P<step>\d+)$")  # tf.train.Saver's `save(..., global_step=N)`


def saved_steps(folder: Path) -> dict[int, Path]:
    """The checkpoints a run folder holds by step (prefixes `<name>-<step>` with an index file),
    in step order. The `checkpoint` file's list is not trusted alone: Saver deletes the files of
    old steps, and a folder copied by hand may lack some."""
    steps = {}
    for index in folder.glob("*.index"):
        m = STEP_PREFIX.match(index.name.removesuffix(".index"))
        if m is not None and file_kind(index) == "tf-index":
            steps[int(m.group("step"))] = index.with_suffix("")
    return dict(sorted(steps.items()))


def step_prefix(path: Path, step: int) -> Path:
    """The checkpoint prefix of one saved step of a run folder; an unknown step names the saved ones."""
    folder = path.parent if path.is_file() else path
    steps = saved_steps(folder)
    if step in steps:
        return steps[step]
    if not steps:
        raise WeightsError(f"{folder}: no checkpoints saved by step (<name>-<step>.index), so no step {step} to pick")
    raise WeightsError(f"{folder}: no checkpoint of step {step} (saved steps: {', '.join(map(str, steps))})")


def prefix_step(prefix: Path) -> int | None:
    """The step a checkpoint prefix was saved at, if its name carries one."""
    m = STEP_PREFIX.match(prefix.name)
    return int(m.group("step")) if m else None


def checkpoint_prefix(path: Path, step: int | None = None) -> Path:
    """The checkpoint prefix of a folder (named by its `checkpoint` file, or its only *.index
    file), or of an index file given itself; with `step`, the save of that step. Never a prefix
    outside the folder."""
    if step is not None:
        return step_prefix(path, step)
    if path.is_file():
        if not path.name.endswith(".index"):
            raise WeightsError(f"{path}: a TensorFlow checkpoint is read from its folder or its .index file")
        return path.with_suffix("")
    folder = path
    record = folder / "checkpoint"
    if record.is_file():
        m = re.search(r'^model_checkpoint_path:\s*"(.*)"\s*$', record.read_text(errors="replace"), re.M)
        if m is None:
            raise WeightsError(f"{record}: no model_checkpoint_path line")
        name = m.group(1)
        if Path(name).is_absolute():
            # checkpoints moved from another machine keep that machine's absolute paths: the
            # checkpoint of that name in this folder is the one meant
            base = PurePosixPath(name).name
            if base not in ("", ".", "..") and Path(f"{folder / base}.index").is_file():
                return folder / base
            relative = os.path.relpath(os.path.normpath(name), os.path.abspath(folder))
            if not relative.startswith(".."):  # this folder's own absolute path
                name = relative
        return inside(folder, name, record, "model_checkpoint_path")
    indexes = sorted(folder.glob("*.index"))
    if len(indexes) != 1:
        raise WeightsError(f"{folder}: no 'checkpoint' file and {len(indexes)} *.index files; cannot tell which "
                           "checkpoint to load")
    return indexes[0].with_suffix("")


def read_openai(path: Path, dtype: torch.dtype | None = None,
                checkpoint_step: int | None = None) -> tuple[GPT2Config, dict[str, torch.Tensor]]:
    folder = path.parent if path.is_file() else path
    config = GPT2Config.from_file(folder / "hparams.json")
    bundle = TensorBundle(checkpoint_prefix(path, checkpoint_step))
    return config, collect(OPENAI, bundle, config, bundle.index_path, "hparams.json", dtype)


def write_openai(model, state: dict[str, torch.Tensor], folder: Path, tokenizer, metadata=None) -> None:
    """Write the OpenAI layout into an existing (empty, temporary) folder."""
    config = model.config
    options = config.non_default_options()
    if options:
        raise WeightsError(f"the OpenAI TensorFlow layout cannot hold {options[0]}: "
                           f"{str(getattr(config, options[0])).lower()} (hparams.json has no such key); "
                           "save this model in the hf format")
    config.save(folder / "hparams.json")
    write_bundle(folder / "model.ckpt", OPENAI.export(state))
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\n'
                                       'all_model_checkpoint_paths: "model.ckpt"\n')
    shutil.copyfile(tokenizer.vocab_file, folder / "encoder.json")
    shutil.copyfile(tokenizer.merges_file, folder / "vocab.bpe")
