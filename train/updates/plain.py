"""The plain update: one forward/backward and one optimizer step (every non-SAM optimizer)."""

from __future__ import annotations

from fairforge.train.methods.base import LossFn, StepContext, StepLogs

from .base import UPDATES, detached


@UPDATES.register("plain")
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


__all__ = ["plain_update"]
