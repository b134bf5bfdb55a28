"""Efficient SAM: the ascent computed every k updates and reused in between, so SAM costs ~ERM.

SAM pays two forward/backward passes per update: one for the ascent direction, one at the perturbed
point. The ascent direction changes slowly from one update to the next (Liu et al., "Towards
Efficient and Scalable Sharpness-Aware Minimization", CVPR 2022, measured it), so recomputing it
every update is mostly waste. `optimizer: {name: sam, every: k}` selects this update rule
(`efficient_sam`); every k-th update (and the first one after a start or a resume) is a full SAM
update, the others take ONE pass, so an update costs (k + 1) / k ERM passes on average. Two ways to
reuse (`optimizer.reuse`):

* `perturbation` (default): keep the perturbation e = rho g / ||g|| of the last full update; an
  in-between update moves to w + e (the stale direction, today's weights), does one forward and
  backward there, comes back to w and steps with that gradient. This is SAM with a lagged ascent.
  Batch-norm running statistics are updated by this single pass (there is no unperturbed pass; the
  perturbation is small), so they keep tracking the data every update.
* `looksam` (LookSAM, ibid.): the full update also splits the SAM gradient g_s into its part along
  the plain gradient g and the orthogonal rest g_v = g_s - (g_s . g / ||g||^2) g, which carries the
  sharpness information; an in-between update computes only g at w and steps with
  g + alpha ||g|| / ||g_v|| g_v (alpha = `optimizer.looksam_alpha`, 0.7 in the paper).

Under DDP the full update is the trainer's SAM update itself (sam.py: local ascent inside `no_sync`
unless `optimizer.ascent: global`, BN statistics from the first pass, clipping, fp16), which hands
over the perturbation after its ascent (`on_ascent`) and the final SAM gradient before its base step
(`before_step`, where LookSAM's g_v is recorded, averaged over processes since local ascents differ,
so every process reuses the same g_v). An in-between update's single backward is all-reduced as usual, so every process
takes the same step. A skipped fp16 step forgets the stored direction. The stored direction is not
checkpointed: a resumed run starts with a full update. LookSAM needs plain SAM's ascent (parallel to
g), so it refuses `adaptive: true`.
"""

from __future__ import annotations

import torch

from fairforge.errors import ConfigError
from fairforge.train.methods.base import LossFn, StepContext, StepLogs
from fairforge.train.sam import SAM
from fairforge.train.tensorlists import dot, norm

from .base import UPDATES, detached
from .sam import finish_sam_update, sam_update

#: per-parameter keys in `SAM.state` (never part of `state_dict`: that is the base optimizer's)
PERTURBATION = "efficient_sam_e"
ORTHOGONAL = "efficient_sam_gv"


def _params(sam: SAM) -> list[torch.Tensor]:
    return [p for group in sam.param_groups for p in group["params"]]


def _has_stored(sam: SAM, key: str) -> bool:
    return any(key in sam.state[p] for p in _params(sam))


def _forget(sam: SAM) -> None:
    for p in _params(sam):
        sam.state[p].pop(PERTURBATION, None)
        sam.state[p].pop(ORTHOGONAL, None)


def _finish(ctx: StepContext, sam: SAM, unscaled: bool = False) -> bool:
    """The SAM rule's finish; an fp16 overflow also forgets the stored direction."""
    stepped = finish_sam_update(ctx, sam, unscaled)
    if not stepped:
        _forget(sam)
    return stepped


def _full_update(ctx: StepContext, sam: SAM, loss_fn: LossFn, looksam: bool) -> StepLogs:
    """The trainer's SAM update, recording what the next in-between updates reuse.

    SAM hands over its perturbation e right after the ascent (stored as is for `perturbation`),
    and calls back with the final SAM gradient g_s in `.grad` just before its base step (LookSAM
    stores g_v from it).
    """
    moved: list[torch.Tensor] = []
    ascent: list[torch.Tensor] = []

    def on_ascent(params: list[torch.Tensor], perturbation: list[torch.Tensor]) -> None:
        moved.extend(params)
        ascent.extend(perturbation)
        if not looksam:
            for p, e in zip(params, perturbation):
                sam.state[p][PERTURBATION] = e

    @torch.no_grad()
    def record_orthogonal() -> None:
        # g_v = g_s - (g_s . g^) g^ with g^ the unit ascent direction (g / ||g|| for plain SAM)
        sharp = [p.grad if p.grad is not None else torch.zeros_like(p) for p in moved]
        unit = torch._foreach_div(ascent, norm(ascent).clamp_min(1e-24))
        orthogonal = torch._foreach_sub(sharp, torch._foreach_mul(unit, dot(sharp, unit)))
        if ctx.accelerator.num_processes > 1:  # local ascents differ: agree on one g_v everywhere
            flat = ctx.accelerator.reduce(torch.cat([t.flatten() for t in orthogonal]), reduction="mean")
            orthogonal = list(flat.split([t.numel() for t in orthogonal]))
        for p, g_v in zip(moved, orthogonal):
            sam.state[p][ORTHOGONAL] = g_v.view_as(p)

    return sam_update(ctx, loss_fn, on_ascent=on_ascent, before_step=record_orthogonal if looksam else None)


@torch.no_grad()
def _move_to_stored_perturbation(sam: SAM) -> None:
    for p in _params(sam):
        e = sam.state[p].get(PERTURBATION)
        if e is not None:
            sam.state[p]["old_p"] = p.detach().clone()
            p.add_(e)


def _reuse_update(ctx: StepContext, sam: SAM, loss_fn: LossFn, looksam: bool) -> StepLogs:
    """One forward/backward: at w + the stored perturbation, or at w plus LookSAM's stored g_v."""
    acc = ctx.accelerator
    if not looksam:
        _move_to_stored_perturbation(sam)
        losses = loss_fn()
        acc.backward(losses["overall"])
        _finish(ctx, sam)
        return detached(losses)
    losses = loss_fn()
    acc.backward(losses["overall"])
    if acc.scaler is not None:
        acc.scaler.unscale_(sam.base_optimizer)
    with torch.no_grad():
        params = [p for p in _params(sam) if p.grad is not None and ORTHOGONAL in sam.state[p]]
        grads = [p.grad for p in params]
        stored = [sam.state[p][ORTHOGONAL] for p in params]
        scale = ctx.config.optimizer.looksam_alpha * norm(grads) / norm(stored).clamp_min(1e-12)
        torch._foreach_add_(grads, torch._foreach_mul(stored, scale))
    _finish(ctx, sam, unscaled=True)
    return detached(losses)


@UPDATES.register("efficient_sam")
def efficient_sam_update(ctx: StepContext, loss_fn: LossFn) -> StepLogs:
    """SAM with the ascent refreshed every `optimizer.every` updates (see the module docstring)."""
    sam = ctx.sam
    if sam is None:
        raise ConfigError("optimizer.update: the efficient_sam rule needs optimizer.name: sam")
    opt = ctx.config.optimizer
    looksam = opt.reuse == "looksam"
    if looksam and opt.adaptive:
        raise ConfigError("optimizer.reuse: looksam splits the gradient along SAM's ascent; it needs adaptive: false")
    key = ORTHOGONAL if looksam else PERTURBATION
    if ctx.step % opt.every == 0 or not _has_stored(sam, key):
        return _full_update(ctx, sam, loss_fn, looksam)
    return _reuse_update(ctx, sam, loss_fn, looksam)


__all__ = ["ORTHOGONAL", "PERTURBATION", "efficient_sam_update"]
