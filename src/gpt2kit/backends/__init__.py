"""Model backends: implementations of the `Decoder` interface that generation and scoring run on."""

from gpt2kit.backends.decoder import Cache, Decoder

__all__ = ["Cache", "Decoder"]
