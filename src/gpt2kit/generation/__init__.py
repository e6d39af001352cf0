"""Text side of the data path: logits -> logits steps -> sampler -> token ids -> text."""

from gpt2kit.generation.decode import Generation, Sampler, generate, generate_all
from gpt2kit.generation.gumbel import GumbelSoftmaxOutput, gumbel_softmax_decode
from gpt2kit.generation.settings import GenerationSettings
from gpt2kit.generation.text import Completion, complete, stream

__all__ = [
    "Completion", "Generation", "GenerationSettings", "GumbelSoftmaxOutput", "Sampler", "complete", "generate",
    "generate_all", "gumbel_softmax_decode", "stream",
]
