"""Classifying text with a GPT2Classifier: labels and probabilities, batched."""

from gpt2kit.classification.predict import Prediction, classify

__all__ = ["Prediction", "classify"]
