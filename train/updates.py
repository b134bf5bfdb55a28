"""Update rules: how one optimizer update turns a method's loss into new weights.

A method's `training_step` usually calls `ctx.update(loss_fn)`; the rule named by
`optimizer.update` (null: `sam` when `optimizer.name` is sam, else `plain`) runs the passes.
Rules register themselves here (`@register_update("name")`), so a new update scheme (efficient SAM)
is a new function, not a branch in the trainer. Contract of a rule: `rule(ctx, loss_fn) -> logs`;
call `loss_fn()` once per forward pass, back-propagate `["overall"]` with
`ctx.accelerator.backward`, step the optimizer and `ctx.scheduler` once, leave gradients zeroed,
and return the first pass's losses detached.

The SAM rule, and why each line is where it is:
- First forward/backward inside `accelerator.no_sync(model)` when `optimizer.ascent: local`: each
  process perturbs its weights with its own gradient, as the SAM paper does (its m-sharpness: the
  per-device batch is the "m"), which saves one all-reduce per step. `ascent: global` all-reduces
  the first gradient too, so the perturbation equals a single-process run on the global batch.
- fp16: the scaler's gradients are unscaled before the ascent (its direction and norm must be in
  true units); an inf/NaN there skips the whole step on every process together (one tiny
  all-reduce of the flag), and lowers the scale.
- The second forward runs under `bn_update_off`: batch-norm running statistics change once per
  step, from the unperturbed weights.
- Clipping happens after the second backward, on the gradient the base optimizer will use.
- The scheduler steps the base optimizer's groups once per update; skipped fp16 steps do not count.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping

import torch

from fairforge.errors import ConfigError

from .methods.base import LossFn, StepContext, StepLogs
from .sam import SAM, bn_update_off

UpdateFn = Callable[[StepContext, LossFn], StepLogs]
_RULES: dict[str, UpdateFn] = {}
#: Modules of this package that register further rules (imported on first lookup).
RULE_MODULES: tuple[str, ...] = ("efficient_sam",)


def register_update(name: str) -> Callable[[UpdateFn], UpdateFn]:
    def wrap(fn: UpdateFn) -> UpdateFn:
        _RULES[name] = fn
        return fn

    return wrap


def get_update(optimizer_name: str, update: str | None) -> UpdateFn:
    """The rule for `optimizer.update` (null: `sam` for SAM, `plain` otherwise)."""
    for module in RULE_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    name = update or ("sam" if optimizer_name == "sam" else "plain")
    if name not in _RULES:
        raise ConfigError(f"optimizer.update: unknown update rule {name!r}; expected one of {sorted(_RULES)}")
    return _RULES[name]


def detached(losses: Mapping[str, torch.Tensor]) -> StepLogs:
    return {key: value.detach() for key, value in losses.items()}


@register_update("plain")
def plain_update(ctx: StepContext, loss_fn: LossFn) -> StepLogs:
    """One forward/backward; gradient accumulation through `accelerator.accumulate`."""
    acc = ctx.accelerator
    with acc.accumulate(ctx.model):
        losses = loss_fn()
        acc.backward(losses["overall"])
        if acc.sync_gradients and ctx.config.max_grad_norm:
            acc.clip_grad_norm_(ctx.model.parameters(), ctx.config.max_grad_norm)
        ctx.optimizer.step()
        ctx.optimizer.zero_grad(set_to_none=True)
    if acc.sync_gradients and not ctx.optimizer.step_was_skipped:
        ctx.scheduler.step()
    return detached(losses)


@register_update("sam")
def sam_update(ctx: StepContext, loss_fn: LossFn) -> StepLogs:
    """SAM/ASAM: ascent pass, perturbed pass, base step (see the module docstring)."""
    acc, model, sam = ctx.accelerator, ctx.model, ctx.sam
    if sam is None:
        raise ConfigError("optimizer.update: the sam rule needs optimizer.name: sam")
    scaler = acc.scaler
    local = ctx.config.optimizer.ascent == "local"
    with acc.no_sync(model) if local else contextlib.nullcontext():
        losses = loss_fn()
        acc.backward(losses["overall"])
    norm = None
    if scaler is not None:
        scaler.unscale_(sam)
        norm = sam.grad_norm()
        bad = torch.tensor(0.0 if torch.isfinite(norm) else 1.0, device=acc.device)
        if local:
            bad = acc.reduce(bad, reduction="sum")
        if bad.item() > 0:
            sam.zero_grad(set_to_none=True)
            scaler.update()
            return {**detached(losses), "skipped": 1.0}
    sam.first_step(zero_grad=True, grad_norm=norm)
    with bn_update_off(model):
        acc.backward(loss_fn()["overall"])
    finish_sam_update(ctx, sam)
    return detached(losses)


def finish_sam_update(ctx: StepContext, sam: SAM, unscaled: bool = False) -> bool:
    """After the last backward of a SAM update: unscale (unless done), clip, restore w, base step, zero, schedule.

    Clipping comes after the second backward (it bounds the step actually taken). Returns whether the
    base optimizer stepped: an fp16 overflow makes the scaler skip it, and then the scheduler does
    not advance either.
    """
    scaler = ctx.accelerator.scaler
    if scaler is not None and not unscaled:
        scaler.unscale_(sam.base_optimizer)
    if ctx.config.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), ctx.config.max_grad_norm)
    sam.restore()
    stepped = True
    if scaler is not None:
        scale = scaler.get_scale()
        scaler.step(sam.base_optimizer)
        scaler.update()
        stepped = scaler.get_scale() >= scale
    else:
        sam.base_optimizer.step()
    sam.zero_grad(set_to_none=True)
    if stepped:
        ctx.scheduler.step()
    return stepped


__all__ = ["UpdateFn", "detached", "finish_sam_update", "get_update", "plain_update", "register_update", "sam_update"]

# Rules defined in other modules register on import (last, so they can import this module's names).
from . import efficient_sam  # noqa: E402,F401  (optimizer.every / reuse)
