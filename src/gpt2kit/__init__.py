"""gpt2kit: a complete GPT-2 toolkit on PyTorch."""

from gpt2kit.backends import LoadedModel, load
from gpt2kit.config import GPT2Config
from gpt2kit.errors import GPT2KitError
from gpt2kit.generation import Completion, GenerationSettings, complete, generate, stream
from gpt2kit.model import GPT2, KVCache
from gpt2kit.tokenizer import Tokenizer

__version__ = "0.1.0"
__all__ = [
    "GPT2", "GPT2Config", "GPT2KitError", "Completion", "GenerationSettings", "KVCache", "Tokenizer", "complete",
    "generate", "stream",
    "LoadedModel", "load",
]
