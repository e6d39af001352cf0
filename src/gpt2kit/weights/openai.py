"""OpenAI's original GPT-2 release: a TensorFlow checkpoint folder, read and written without TensorFlow.

Folder: hparams.json, checkpoint (names the model prefix), model.ckpt.index,
model.ckpt.data-00000-of-00001, encoder.json, vocab.bpe (model.ckpt.meta, the TF graph,
is not needed to load the weights: gpt-2 and gpt-2-simple build the graph from code).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch

from gpt2kit.config import GPT2Config
from gpt2kit.errors import WeightsError
from gpt2kit.weights.layouts import OPENAI, collect
from gpt2kit.weights.tensorbundle import TensorBundle, write_bundle


def checkpoint_prefix(folder: Path) -> Path:
    """The checkpoint prefix the folder's `checkpoint` file names (or its only *.index file)."""
    record = folder / "checkpoint"
    if record.is_file():
        m = re.search(r'^model_checkpoint_path:\s*"(.*)"\s*$', record.read_text(errors="replace"), re.M)
        if m is None:
            raise WeightsError(f"{record}: no model_checkpoint_path line")
        prefix = Path(m.group(1))
        if not prefix.is_absolute():
            return folder / prefix
        # checkpoints moved from another machine keep absolute paths: fall back to the name here
        return prefix if Path(f"{prefix}.index").is_file() else folder / prefix.name
    indexes = sorted(folder.glob("*.index"))
    if len(indexes) != 1:
        raise WeightsError(f"{folder}: no 'checkpoint' file and {len(indexes)} *.index files; cannot tell which "
                           "checkpoint to load")
    return indexes[0].with_suffix("")


def read_openai(folder: Path, dtype: torch.dtype | None = None) -> tuple[GPT2Config, dict[str, torch.Tensor]]:
    config = GPT2Config.from_file(folder / "hparams.json")
    bundle = TensorBundle(checkpoint_prefix(folder))
    return config, collect(OPENAI, bundle, config, bundle.index_path, "hparams.json", dtype)


def write_openai(state: dict[str, torch.Tensor], config: GPT2Config, folder: Path, tokenizer) -> None:
    """Write the OpenAI layout into an existing (empty, temporary) folder."""
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
