"""LoRA: low-rank adapters on the attention and MLP projections, merged into plain weights.

W x becomes W x + (alpha / r) B A x with A (r, in) random and B (out, r) zero, so training
starts from the unchanged model and only A and B learn. Merging adds (alpha / r) B A to W.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, dtype=base.weight.dtype,
                                               device=base.weight.device))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, dtype=base.weight.dtype,
                                               device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale

    def merged(self) -> nn.Linear:
        with torch.no_grad():
            self.base.weight += (self.lora_b @ self.lora_a) * self.scale
        return self.base


def add_lora(model: nn.Module, rank: int, alpha: float | None = None) -> None:
    """Freeze every weight and wrap the target projections of each block with adapters."""
    for p in model.parameters():
        p.requires_grad_(False)
    for block in model.h:
        for path in TARGETS:
            owner_name, attr = path.split(".")
            owner = getattr(block, owner_name)
            setattr(owner, attr, LoRALinear(getattr(owner, attr), rank, alpha or 2.0 * rank))


def merge_lora(model: nn.Module) -> None:
    """Fold every adapter into its linear layer, leaving a plain GPT2 (in place)."""
    for block in model.h:
        for path in TARGETS:
            owner_name, attr = path.split(".")
            owner = getattr(block, owner_name)
            layer = getattr(owner, attr)
            if isinstance(layer, LoRALinear):
                setattr(owner, attr, layer.merged())


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoRALinear) for m in model.modules())


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters' weights alone (on the CPU): all a LoRA checkpoint needs besides the base model."""
    return {n: p.detach().cpu() for n, p in model.named_parameters() if "lora_" in n}


def merged_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights as a plain GPT2 state dict with the adapters folded in, leaving the
    model and its adapters as they are (training goes on after a checkpoint)."""
    state = {}
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            delta = (module.lora_b @ module.lora_a) * module.scale
            state[f"{name}.weight"] = (module.base.weight + delta).detach()
            state[f"{name}.bias"] = module.base.bias.detach()
    for name, tensor in model.state_dict().items():
        plain = name.replace(".base.", ".")
        if "lora_" not in name and plain not in state:
            state[plain] = tensor
    return state
