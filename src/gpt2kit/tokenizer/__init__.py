from gpt2kit.tokenizer.bpe import EOT, Tokenizer
from gpt2kit.tokenizer.streaming import IncrementalDecoder

__all__ = ["EOT", "IncrementalDecoder", "Tokenizer"]
