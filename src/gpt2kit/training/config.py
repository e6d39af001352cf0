"""TrainConfig: every fine-tuning option, validated before any work."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gpt2kit.errors import TrainingError

SCHEDULES = ("constant", "linear", "cosine", "step")
TASKS = ("lm", "summarization", "classify")
CLASS_WEIGHTS = ("none", "balanced")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    data: str | os.PathLike  # kept as a Path
    out: str | os.PathLike  # kept as a Path
    model: str | os.PathLike | None = None  # model to fine-tune (any format gpt2kit reads, or a name)
    from_scratch: str | None = None  # or a preset to pretrain from random weights
    # ---- data ----------------------------------------------------------------------------------
    seq_len: int | None = None  # default: the model's context
    val_fraction: float = 0.0
    val_file: str | os.PathLike | None = None
    text_column: str = "text"
    errors: str = "strict"  # or "replace": how to read text that is not UTF-8
    cache_dir: str | os.PathLike | None = None
    task: str = "lm"  # "lm": windows of text; "summarization": article/summary records; "classify": labelled text
    recipe: str = "mindspore"  # summarization: how examples are built (summarization/recipes.py)
    loss_on: str = "target"  # summarization: "target" (summary tokens only) or "all"
    source_column: str = "article"  # summarization tables: the article column
    target_column: str = "highlights"  # and the summary column
    limit: int | None = None  # summarization: the first N records only
    label_column: str = "label"  # classify: the class column of .csv / .jsonl (text_column holds the text)
    pooling: str = "last"  # classify: "last" (the last token's hidden state, as transformers) or "mean"
    class_weights: str = "none"  # classify: "balanced" weighs each class alike in the loss
    # ---- optimisation ----------------------------------------------------------------------------
    batch_size: int = 1
    grad_accum: int = 1
    max_steps: int | None = None  # may change on resume: the run goes on to it, the lr schedule follows it
    num_epochs: int | None = None
    steps_per_epoch: int | None = None
    schedule_steps: int | None = None  # the length the lr schedule is planned for, when not the run's own
    base_lr: float = 1e-4
    min_lr: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    decay_epochs: list[int] = field(default_factory=list)  # "step" schedule: lr x decay_factor at each
    decay_factor: float = 0.1
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_state: str = "fp32"  # "bf16": AdamW moments stored in bfloat16, half their memory
    grad_clip: float = 1.0  # 0 disables
    seed: int = 0
    precision: str = "fp32"  # bf16: autocast on CPU and CUDA; fp16: autocast + gradient scaler, CUDA only
    grad_checkpointing: bool = False
    dropout: float | None = None  # embedding, attention and residual dropout; default: the model's (0.1)
    freeze_layers: int = 0  # the first N blocks (and the embeddings) stay fixed
    lora_rank: int = 0  # > 0: train LoRA adapters only, merged into the weights on save
    lora_alpha: float | None = None  # default: 2 x rank
    device: str = "auto"
    # ---- several processes (under torchrun) ----------------------------------------------------------
    fsdp: bool = False  # shard weights, gradients and optimizer state (FSDP2) instead of replicating them (DDP)
    cpu_offload: bool = False  # FSDP on CUDA: keep the shards in host memory between uses
    dist_timeout: float = 600.0  # seconds a collective waits for the other ranks before the run fails
    # ---- while training ----------------------------------------------------------------------------
    eval_every: int = 0  # 0: only at the end (when there is validation data)
    eval_batches: int = 20
    sample_every: int = 0
    sample_prompt: str = ""
    sample_tokens: int = 64
    save_every: int = 0  # 0: only at the end
    keep_last: int = 2
    early_stopping_patience: int = 0  # evaluations without improvement before stopping; 0 disables
    resume: str | os.PathLike | None = None  # "latest" or a checkpoint folder
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        # paths may be given as str or any os.PathLike; they are kept as Path (model and resume as str,
        # since they may also be a name or "latest")
        self.data, self.out = _path("data", self.data), _path("out", self.out)
        self.val_file = None if self.val_file is None else _path("val_file", self.val_file)
        self.cache_dir = None if self.cache_dir is None else _path("cache_dir", self.cache_dir)
        self.model = None if self.model is None else os.fspath(_path("model", self.model, keep=True))
        self.resume = None if self.resume is None else os.fspath(_path("resume", self.resume, keep=True))
        if (self.model is None) == (self.from_scratch is None):
            raise TrainingError("give exactly one of --model and --from-scratch")
        for name in ("batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise TrainingError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "num_epochs", "steps_per_epoch", "schedule_steps", "seq_len"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise TrainingError(f"{name.replace('_', '-')} must be >= 1, got {value}")
        if self.max_steps is None and self.num_epochs is None:
            raise TrainingError("give --max-steps or --num-epochs")
        if self.base_lr <= 0 or self.min_lr < 0:
            raise TrainingError(f"learning rates must be positive, got base-lr {self.base_lr}, min-lr {self.min_lr}")
        if self.schedule not in SCHEDULES:
            raise TrainingError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.adam_state not in ("fp32", "bf16"):
            raise TrainingError(f"adam-state must be fp32 or bf16, got {self.adam_state!r}")
        if self.precision not in PRECISIONS:
            raise TrainingError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not 0 <= self.val_fraction < 1:
            raise TrainingError(f"val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.task not in TASKS:
            raise TrainingError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.pooling not in ("last", "mean"):
            raise TrainingError(f"pooling must be last or mean, got {self.pooling!r}")
        if self.class_weights not in CLASS_WEIGHTS:
            raise TrainingError(f"class-weights must be one of {', '.join(CLASS_WEIGHTS)}, got {self.class_weights!r}")
        if self.task == "classify" and self.fsdp:
            raise TrainingError("--fsdp trains language models; a classifier trains with DDP under torchrun (drop "
                                "--fsdp)")
        if self.loss_on not in ("target", "all"):
            raise TrainingError(f"loss-on must be target or all, got {self.loss_on!r}")
        if self.limit is not None and self.limit < 1:
            raise TrainingError(f"--limit must be at least 1, got {self.limit}")
        if self.errors not in ("strict", "replace"):
            raise TrainingError(f"errors must be strict or replace, got {self.errors!r}")
        for name in ("warmup_steps", "freeze_layers", "lora_rank", "eval_every", "sample_every", "save_every",
                     "early_stopping_patience", "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise TrainingError(f"{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in ("eval_batches", "sample_tokens"):
            if getattr(self, name) < 1:
                raise TrainingError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise TrainingError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.keep_last < 1:
            raise TrainingError(f"keep-last must be >= 1, got {self.keep_last}")
        if self.dist_timeout <= 0:
            raise TrainingError(f"dist-timeout must be > 0 seconds, got {self.dist_timeout}")
        if self.cpu_offload and not self.fsdp:
            raise TrainingError("--cpu-offload offloads FSDP's shards; add --fsdp")
        if self.fsdp and self.lora_rank:
            raise TrainingError("--fsdp with --lora-rank: LoRA's few trained weights need no sharding; drop --fsdp "
                                "(the run uses DDP)")
        if self.fsdp and self.adam_state != "fp32":
            raise TrainingError("--fsdp shards the optimizer state already; drop --adam-state bf16")
        if self.lora_rank and self.freeze_layers:
            raise TrainingError("LoRA already freezes the base weights; drop --freeze-layers")

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def _path(name: str, value: Any, keep: bool = False) -> Any:
    """`value` as a Path (or unchanged with keep=True), refused unless it is a str or os.PathLike."""
    if not isinstance(value, (str, os.PathLike)) or isinstance(os.fspath(value), bytes):
        raise TrainingError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__}")
    return value if keep else Path(value)
