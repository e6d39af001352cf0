"""Text side of the data path: logits -> logits steps -> sampler -> token ids -> text."""

from gpt2kit.generation.decode import DecodeLoop, Generation, Token, generate, generate_all
from gpt2kit.generation.events import StreamEvent, Usage, stream, stream_batch
from gpt2kit.generation.gumbel import GumbelSoftmaxOutput, gumbel_softmax_decode
from gpt2kit.generation.settings import GenerationSettings
from gpt2kit.generation.text import Completion, complete

__all__ = [
    "Completion", "DecodeLoop", "Generation", "GenerationSettings", "GumbelSoftmaxOutput", "StreamEvent", "Token",
    "Usage", "complete", "generate", "generate_all", "gumbel_softmax_decode", "stream", "stream_batch",
]
