"""Training side of the data path: files -> batches -> objective -> trainer -> checkpoint."""

from gpt2kit.training.config import TrainConfig
from gpt2kit.training.lora import add_lora, merge_lora
from gpt2kit.training.objectives import LanguageModeling, Objective, lm_loss
from gpt2kit.training.trainer import Trainer, TrainingInterrupted, TrainResult, finetune

__all__ = ["LanguageModeling", "Objective", "TrainConfig", "TrainResult", "Trainer", "TrainingInterrupted", "add_lora",
           "finetune", "lm_loss", "merge_lora"]
