"""gpt2kit: a complete GPT-2 toolkit on PyTorch."""

from gpt2kit.backends import Decoder, LoadedModel, load
from gpt2kit.config import GPT2Config
from gpt2kit.errors import GPT2KitError
from gpt2kit.evaluation import perplexity, score
from gpt2kit.generation import (
    Completion,
    GenerationSettings,
    StreamEvent,
    complete,
    generate,
    stream,
    stream_batch,
)
from gpt2kit.model import GPT2, KVCache
from gpt2kit.tokenizer import Tokenizer

__version__ = "0.1.0"
__all__ = [
    "GPT2", "GPT2Config", "GPT2KitError", "Completion", "Decoder", "GenerationSettings", "KVCache", "LoadedModel",
    "StreamEvent", "Tokenizer", "complete", "generate", "load", "perplexity", "score", "stream", "stream_batch",
]
