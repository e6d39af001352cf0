"""Training data: files -> documents -> cached token file -> random windows; or examples -> padded batches."""

from gpt2kit.data.batch import IGNORE_INDEX, Batch, BatchSource, TrainingData
from gpt2kit.data.dataset import WindowSampler, load_splits, tokenize_to_cache
from gpt2kit.data.examples import Example, ExampleSampler, Part, collate, example_batches
from gpt2kit.data.tokens import open_tokens, write_tokens

__all__ = ["IGNORE_INDEX", "Batch", "BatchSource", "Example", "ExampleSampler", "Part", "TrainingData",
           "WindowSampler", "collate", "example_batches", "load_splits", "open_tokens", "tokenize_to_cache",
           "write_tokens"]
