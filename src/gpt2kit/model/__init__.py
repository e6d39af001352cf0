from gpt2kit.model.cache import KVCache
from gpt2kit.model.classifier import ClassifierConfig, GPT2Classifier
from gpt2kit.model.gpt2 import GPT2

__all__ = ["GPT2", "ClassifierConfig", "GPT2Classifier", "KVCache"]
