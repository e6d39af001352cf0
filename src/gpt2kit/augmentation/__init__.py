"""New labelled examples from a language model fine-tuned on `label: text` lines (see augment.py)."""

from gpt2kit.augmentation.augment import Augmented, Keep, LabelCount, augment
from gpt2kit.augmentation.dedup import DuplicateIndex
from gpt2kit.augmentation.run import Runtime, augment_labelled
from gpt2kit.augmentation.tune import TuneSettings, tune_on_lines

__all__ = ["Augmented", "DuplicateIndex", "Keep", "LabelCount", "Runtime", "TuneSettings", "augment",
           "augment_labelled", "tune_on_lines"]
