"""Small CPU training loops shared by plugins (distillation, fine-tuning): cancellable, progress- and
loss-reporting, deterministic for a given seed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from workbench.errors import PluginError
from workbench.plugin import Task

if TYPE_CHECKING:
    from torch import nn


def train(
    module: nn.Module,
    x: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    teacher_logits: np.ndarray | None = None,
    epochs: int = 5,
    lr: float = 2e-3,
    batch_size: int = 64,
    temperature: float = 4.0,
    alpha: float = 0.7,
    seed: int = 0,
    task: Task | None = None,
    keep_zero: dict[str, np.ndarray] | None = None,
) -> list[float]:
    """Train ``module`` in place; returns the mean loss per epoch.

    Loss: ``alpha`` · KL(student‖teacher at ``temperature``) · T² + (1 − ``alpha``) · cross-entropy on labels.
    With no teacher it is plain cross-entropy; with no labels it is pure distillation. ``keep_zero`` maps
    parameter names to masks of weights that must stay zero (fine-tuning a pruned model).
    """
    import torch
    from torch.nn import functional as F

    task = task or Task()
    if labels is None and teacher_logits is None:
        raise PluginError("training needs labels or a teacher")
    torch.manual_seed(seed)
    inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    targets = torch.from_numpy(labels.astype(np.int64)) if labels is not None else None
    soft = torch.from_numpy(teacher_logits.astype(np.float32)) if teacher_logits is not None else None
    weight = alpha if (soft is not None and targets is not None) else (1.0 if soft is not None else 0.0)
    params = dict(module.named_parameters())
    masks = {
        name: torch.from_numpy(mask.astype(np.float32)) for name, mask in (keep_zero or {}).items() if name in params
    }
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    steps_per_epoch = (len(inputs) + batch_size - 1) // batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(epochs * steps_per_epoch, 1))
    generator = torch.Generator().manual_seed(seed)
    history = []
    module.train()
    for epoch in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        total = 0.0
        for step, start in enumerate(range(0, len(inputs), batch_size)):
            task.check()
            index = order[start : start + batch_size]
            logits = module(inputs[index])
            loss = torch.zeros(())
            if soft is not None and weight > 0:
                kd = F.kl_div(
                    F.log_softmax(logits / temperature, dim=1),
                    F.softmax(soft[index] / temperature, dim=1),
                    reduction="batchmean",
                )
                loss = loss + weight * kd * temperature**2
            if targets is not None and weight < 1:
                loss = loss + (1 - weight) * F.cross_entropy(logits, targets[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if masks:
                with torch.no_grad():
                    for name, mask in masks.items():
                        params[name].mul_(mask)
            total += float(loss.item())
            task.report(
                (epoch + (step + 1) / steps_per_epoch) / epochs, f"epoch {epoch + 1}/{epochs}, loss {loss.item():.4f}"
            )
        history.append(total / steps_per_epoch)
        task.metric("loss", history[-1])
    module.eval()
    return history
