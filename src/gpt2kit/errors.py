"""Errors a user can cause.

Each carries one line that names the problem (and the file, where there is one);
the CLI prints it and exits non-zero. Anything else is a bug and keeps its traceback.
"""


class GPT2KitError(Exception):
    """Base class of every user-facing gpt2kit error."""

    # under torchrun: set on an error every rank raises alike (rank 0's, sent to all), which rank 0 alone prints
    same_on_every_rank = False


class ConfigError(GPT2KitError):
    """An unknown preset, or a config file that is missing, malformed or inconsistent."""


class WeightsError(GPT2KitError):
    """A weights file that is missing, truncated, unsafe, or does not fit the config."""


class ModelNotFoundError(GPT2KitError):
    """A model name or path that resolves to nothing loadable."""


class TokenizerError(GPT2KitError):
    """Vocabulary files that are missing or malformed, or token ids out of range."""


class GenerationError(GPT2KitError):
    """Invalid generation settings or a prompt that cannot be generated from."""


class DataError(GPT2KitError):
    """Training data that is missing, empty, not text, or too short."""


class TrainingError(GPT2KitError):
    """Invalid training options, or an output folder that cannot be used."""


class AugmentationError(GPT2KitError):
    """Augmentation settings that cannot give the examples asked for (a count below 1, greedy decoding)."""
