"""Optimizer and LR schedule from the config.

`optimizer.name: sam` wraps `optimizer.base` in SAM; the schedule is attached to the base
optimizer (SAM shares its parameter groups, so the LR SAM's base step uses is the scheduled one).
Schedules are a warmup followed by constant / linear decay / cosine decay over the run's updates.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from fairforge.config.train import OptimizerConfig, SchedulerConfig

from .sam import SAM

_BASES: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


def _kwargs(name: str, cfg: OptimizerConfig) -> dict[str, Any]:
    if name == "sgd":
        return {"lr": cfg.lr, "momentum": cfg.momentum, "weight_decay": cfg.weight_decay, "nesterov": cfg.nesterov}
    return {"lr": cfg.lr, "betas": cfg.betas, "eps": cfg.eps, "weight_decay": cfg.weight_decay}


def build_optimizer(model: nn.Module, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.name == "sam":
        return SAM(params, _BASES[cfg.base], rho=cfg.rho, adaptive=cfg.adaptive, **_kwargs(cfg.base, cfg))
    return _BASES[cfg.name](params, **_kwargs(cfg.name, cfg))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, total_steps: int, updates_per_epoch: int = 1
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR on the base optimizer: linear warmup, then the named decay to 0 at `total_steps`.

    `step` decays by `gamma` every `step_epochs` epochs of `updates_per_epoch` updates (the
    published recipes' per-epoch `StepLR(step_size, gamma)`), counted from the first update.
    """
    base = optimizer.base_optimizer if isinstance(optimizer, SAM) else optimizer
    warmup, name = cfg.warmup_steps, cfg.name

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if name == "constant":
            return 1.0
        if name == "step":
            return cfg.gamma ** (step // (cfg.step_epochs * max(1, updates_per_epoch)))
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 1.0 - progress if name == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(base, factor)


__all__ = ["build_optimizer", "build_scheduler"]
