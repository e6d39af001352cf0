"""Optimizer and learning-rate schedule.

AdamW decays matrices only (embeddings and linear weights), never biases or LayerNorm
gains, as GPT-2 recipes do. The schedule is a pure function of the step, so resuming
needs nothing but the step count.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gpt2kit.training.adamw import AdamWLowMemory
from gpt2kit.training.config import TrainConfig


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [g for g in ({"params": decay, "weight_decay": config.weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    if config.adam_state == "bf16":
        return AdamWLowMemory(groups, lr=config.base_lr, betas=config.adam_betas)
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(groups, lr=config.base_lr, betas=config.adam_betas, fused=fused)


def lr_at(step: int, total_steps: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based)."""
    base = config.base_lr
    if config.warmup_steps and step < config.warmup_steps:
        return base * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return base
    if config.schedule == "step":
        epoch = step // max(1, steps_per_epoch)
        # decay epochs are 1-based, as recipes write them ("decay at epochs 4 and 5")
        return base * config.decay_factor ** sum(epoch + 1 >= e for e in config.decay_epochs)
    span = max(1, total_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    if config.schedule == "linear":
        return config.min_lr + (base - config.min_lr) * (1 - progress)
    return config.min_lr + (base - config.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
