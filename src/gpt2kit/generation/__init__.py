"""Text side of the data path: logits -> logits steps -> sampler -> token ids."""

from gpt2kit.generation.decode import decode, generate
from gpt2kit.generation.settings import GenerationSettings

__all__ = ["GenerationSettings", "decode", "generate"]
