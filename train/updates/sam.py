"""The SAM update rule (`sam`): ascent pass, perturbed pass, base step.

Rules built on SAM (efficient_sam.py) reuse this one and are handed what they need explicitly:
`on_ascent(params, perturbation)` right after the ascent step, and `before_step()` when the final
SAM gradient is in `.grad` (unscaled and clipped), just before the base optimizer steps.

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
from collections.abc import Callable

import torch

from fairforge.errors import ConfigError
from fairforge.train.methods.base import LossFn, StepContext, StepLogs
from fairforge.train.sam import SAM, bn_update_off

from .base import UPDATES, detached

#: `on_ascent(params, perturbation)`: the parameters the ascent moved and their perturbations e
AscentCallback = Callable[[list[torch.Tensor], list[torch.Tensor]], None]


@UPDATES.register("sam")
def sam_update(
    ctx: StepContext,
    loss_fn: LossFn,
    on_ascent: AscentCallback | None = None,
    before_step: Callable[[], None] | None = None,
) -> StepLogs:
    """SAM/ASAM: ascent pass, perturbed pass, base step (see the module docstring).

    `on_ascent` and `before_step` are the seams for rules built on this one (see the docstring);
    a step skipped for an fp16 overflow in the first pass calls neither.
    """
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
    if on_ascent is not None:
        on_ascent(*sam.perturbation())
    with bn_update_off(model):
        acc.backward(loss_fn()["overall"])
    finish_sam_update(ctx, sam, before_step=before_step)
    return detached(losses)


def finish_sam_update(
    ctx: StepContext, sam: SAM, unscaled: bool = False, before_step: Callable[[], None] | None = None
) -> bool:
    """After the last backward of a SAM update: unscale (unless done), clip, restore w, base step, zero, schedule.

    Clipping comes after the second backward (it bounds the step actually taken); `before_step`
    sees the gradient the base optimizer will use. Returns whether the base optimizer stepped: an
    fp16 overflow makes the scaler skip it, and then the scheduler does not advance either.
    """
    scaler = ctx.accelerator.scaler
    if scaler is not None and not unscaled:
        scaler.unscale_(sam.base_optimizer)
    if ctx.config.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), ctx.config.max_grad_norm)
    if before_step is not None:
        before_step()
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


__all__ = ["AscentCallback", "finish_sam_update", "sam_update"]
