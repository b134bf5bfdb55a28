"""The update-rule registry and what every rule shares.

A rule is `rule(ctx, loss_fn) -> logs` (the contract is in this package's docstring); it registers
with `@UPDATES.register(name)` in a module of this package, which is imported on the first lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from fairforge.registry import Registry
from fairforge.train.methods.base import LossFn, StepContext, StepLogs

UpdateFn = Callable[[StepContext, LossFn], StepLogs]

#: name -> rule; `optimizer.update` names one (null: `sam` when `optimizer.name` is sam, else `plain`).
UPDATES: Registry[UpdateFn] = Registry("update rule", discover="fairforge.train.updates")


def get_update(optimizer_name: str, update: str | None) -> UpdateFn:
    """The rule for `optimizer.update` (null: `sam` for SAM, `plain` otherwise)."""
    name = update or ("sam" if optimizer_name == "sam" else "plain")
    return UPDATES.get(name, key="optimizer.update")


def detached(losses: Mapping[str, torch.Tensor]) -> StepLogs:
    """The losses to log: detached from the graph, so logging keeps no activations alive."""
    return {key: value.detach() for key, value in losses.items()}


__all__ = ["UPDATES", "UpdateFn", "detached", "get_update"]
