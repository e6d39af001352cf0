"""Objectives: a batch in, the loss to minimise out.

An objective is an nn.Module that holds the model, so that DDP or FSDP can wrap the one
module whose forward runs both the model and the loss. The trainer calls it and nothing
else computes a loss. Evaluation asks it for (summed loss, counted tokens) instead of the
mean, so that a loss over many batches weighs every token alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gpt2kit.data.batch import IGNORE_INDEX, Batch
from gpt2kit.model.classifier import ClassifierConfig, GPT2Classifier, new_score, pool
from gpt2kit.model.gpt2 import GPT2
from gpt2kit.training.loss import linear_cross_entropy_sum, mean_over


class Objective(nn.Module):
    """Subclasses give `totals`; the loss is their mean (0, not NaN, when nothing counts)."""

    def totals(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed loss, number of counted tokens) of one batch."""
        raise NotImplementedError

    def forward(self, batch: Batch) -> torch.Tensor:
        return mean_over(*self.totals(batch))

    def exported(self, model: GPT2) -> nn.Module:
        """What a run saves, given the trained GPT2 with plain weights: the model itself, or the model
        with the objective's own layers around it."""
        return model


class LanguageModeling(Objective):
    """Next-token negative log-likelihood of `model` on the labelled positions of a batch."""

    def __init__(self, model: GPT2) -> None:
        super().__init__()
        self.model = model

    def totals(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.model.hidden_states(batch.input_ids, attention_mask=batch.attention_mask)  # (B, T, C)
        return linear_cross_entropy_sum(h, self.model.head_weight, batch.labels)


class Classification(Objective):
    """Cross-entropy of the class of each row, from `pool` over the model's hidden states and the
    head `score`. A batch holds the class id as the label of the row's last text position (an
    `Example` of the text and one trained "token", the class; right padding after it), so rows and
    ranks are sliced as any batch is. `class_weights` (num_labels,) weigh each row's loss by its
    class; the sum is over rows, counted as rows, so that weights averaging 1 over the data (as
    "balanced" ones do) keep the loss on the scale of the unweighted one."""

    def __init__(self, model: GPT2, head: ClassifierConfig, score: nn.Linear | None = None,
                 class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        if head.pooling == "token":
            raise ValueError("token classification needs a label per token; Classification trains one per row")
        self.model, self.head = model, head
        self.score = score if score is not None else new_score(model.config, head, device=model.device)
        self.register_buffer("class_weights", class_weights, persistent=False)

    def logits(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(class logits (B, num_labels) in fp32, class ids (B,))."""
        h = self.model.hidden_states(batch.input_ids, attention_mask=batch.attention_mask)  # (B, T, C)
        counted = batch.labels != IGNORE_INDEX  # one position a row: its last text token
        last = counted.int().argmax(1)  # (B,)
        T = batch.labels.shape[1]
        text = torch.arange(T, device=h.device) <= last.unsqueeze(1)  # (B, T): the text, up to its class
        if batch.attention_mask is not None:
            text = text & batch.attention_mask.bool()
        logits = self.score(pool(h, self.head.pooling, attention_mask=text)).float()
        return logits, batch.labels[torch.arange(len(last), device=last.device), last]

    def totals(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        logits, classes = self.logits(batch)
        loss = F.cross_entropy(logits, classes, weight=self.class_weights, reduction="none")  # (B,), weighted
        return loss.sum(), torch.tensor(len(classes), device=loss.device)

    def exported(self, model: GPT2) -> GPT2Classifier:
        score = new_score(model.config, self.head, device=torch.device("cpu"), dtype=model.dtype)
        score.load_state_dict({k: v.detach().to("cpu", model.dtype) for k, v in self.score.state_dict().items()})
        return GPT2Classifier(model, self.head, score)


def lm_loss(model: GPT2, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The mean loss LanguageModeling trains on, for callers holding a bare model and tensors
    (benchmarks, parity tests); inputs and labels (B, T)."""
    return LanguageModeling(model)(Batch(input_ids, labels))
