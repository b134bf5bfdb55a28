"""Update rules: how one optimizer update turns a method's loss into new weights.

A method's `training_step` usually calls `ctx.update(loss_fn)`; the rule named by
`optimizer.update` (null: `sam` when `optimizer.name` is sam, else `plain`) runs the passes. Each
rule is a module of this package registering in `UPDATES`, so a new update scheme is a new module,
not a branch in the trainer:

- `plain`: one forward/backward (plain.py)
- `sam`: SAM/ASAM, two passes (sam.py); it hands the perturbation and the final SAM gradient to
  the rules built on it through explicit callbacks
- `efficient_sam`: the SAM ascent every k updates, reused in between (efficient_sam.py)

Contract of a rule: `rule(ctx, loss_fn) -> logs`; call `loss_fn()` once per forward pass,
back-propagate `["overall"]` with `ctx.accelerator.backward`, step the optimizer and
`ctx.scheduler` once, leave gradients zeroed, and return the first pass's losses detached.
"""

from __future__ import annotations

from .base import UPDATES, UpdateFn, detached, get_update
from .plain import plain_update
from .sam import finish_sam_update, sam_update

__all__ = ["UPDATES", "UpdateFn", "detached", "finish_sam_update", "get_update", "plain_update", "sam_update"]
