"""Training side of the data path: files -> dataset -> trainer -> checkpoint."""

from gpt2kit.training.config import TrainConfig
from gpt2kit.training.lora import add_lora, merge_lora
from gpt2kit.training.trainer import TrainResult, finetune, lm_loss

__all__ = ["TrainConfig", "TrainResult", "add_lora", "finetune", "lm_loss", "merge_lora"]
