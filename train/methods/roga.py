"""`roga`: robust gradient alignment across domains (after Qiu, Jiang & Tan, "RoGA: Towards Generalizable
Deepfake Detection through Robust Gradient Alignment", ICME 2025, arXiv 2505.20653).

The idea: a domain-generalization term should not fight the ERM objective. RoGA therefore takes
the ERM gradient as the reference and adds, per training domain, the gradient at that domain's
sharpness-aware ascent point, aligned with the ERM gradient, in one update.

Domains (`roga.reals`): a domain is one manipulation type, the `domain` column of the fakes (their
`method` where it is empty: FF++'s Deepfakes, Face2Face, ...). With `shared` (the default) every
real row of the batch belongs to every domain, as domain-generalization practice builds its
per-domain batches for deepfake detection (each manipulation's fakes with the reals they were made
from), so each domain's loss is a real-vs-fake loss; with `own_domain` the reals form a one-class
domain of their own. Per update, with K the number of domains present in the process's batch:

1. The ERM gradient g of the batch mean loss at w. With `own_domain` the domains partition the
   batch and g = sum_k (n_k / n) g_k of the per-domain gradients of step 2; with `shared` they
   overlap, and g takes one full-batch pass of its own.
2. For each domain k: forward/backward of the domain's samples at w -> g_k (mean loss over them);
   move to the ascent point w + rho g_k / ||g_k|| (`roga.rho`), forward/backward of the domain's
   samples there -> h_k, move back.
3. Align each h_k with g (`roga.align`):
   - `pcgrad` (default): if h_k . g < 0, remove h_k's component along g,
     h_k - (h_k . g / ||g||^2) g; otherwise keep h_k (PCGrad's projection, Yu et al. 2020);
   - `sign`: keep the coordinates of h_k whose sign agrees with g, zero the others;
   - `none`: h_k as is (a per-domain SAM gradient added to ERM's).
4. Update with d = g + `roga.weight` * mean_k aligned h_k through the configured base optimizer.

Cost: 2K forward/backward passes over the domain subsets (+1 full-batch pass with `shared`, where
the reals are in every subset): about (1 + 2K (n_fake/K + n_real)/n) ERM passes, 2 + K with
half-real batches.

How this relates to the paper: the abstract and summaries describe exactly the ingredients above
(ERM gradient, per-domain parameter perturbations, gradient alignment, no extra regularizer); the
authors' code could not be read, so the alignment rule is a config choice rather than a claim:
`pcgrad` keeps what agrees with g and projects conflicts away, `sign` is the element-wise variant,
`none` the ablation. train/METHODS.md lists every assumption.

Batch norm: batch statistics are per domain subset (as in DomainBed-style per-domain batches); the
running statistics are updated once per update, by the passes at w (the full-batch pass with
`shared`), and frozen at the ascent points. Under DDP every pass runs locally (each process may see
a different K), then two flat all-reduces: g is averaged first, so every process aligns with the
global ERM gradient, and the aligned term second; the update is the same on every process. fp16
loss scaling is not supported (use bf16 or no mixed precision).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from fairforge.config.train import TrainConfig
from fairforge.errors import ConfigError
from fairforge.train.sam import bn_update_off
from fairforge.train.tensorlists import dot, norm

from . import register_method
from .base import Batch, StepContext, StepLogs
from .erm import ERM

if TYPE_CHECKING:
    from accelerate import Accelerator

#: alignment rules: (h_k, g) -> aligned h_k, each a list of per-parameter tensors
AlignFn = Callable[[list[torch.Tensor], list[torch.Tensor]], list[torch.Tensor]]


def _align_pcgrad(h: list[torch.Tensor], g: list[torch.Tensor]) -> list[torch.Tensor]:
    coef = dot(h, g).clamp_max(0.0) / dot(g, g).clamp_min(1e-24)
    return torch._foreach_sub(h, torch._foreach_mul(g, coef))


def _align_sign(h: list[torch.Tensor], g: list[torch.Tensor]) -> list[torch.Tensor]:
    return [x * (torch.sign(x) == torch.sign(y)) for x, y in zip(h, g)]


ALIGN: dict[str, AlignFn] = {
    "pcgrad": _align_pcgrad,
    "sign": _align_sign,
    "none": lambda h, g: list(h),
}


def _take_grads(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """The gradients (zeros where a parameter got none), taken out of `.grad` (left None): no copy."""
    out = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    for p in params:
        p.grad = None
    return out


def _flat_mean(acc: Accelerator, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """All-reduce (mean over processes) a list of tensors as one flat buffer."""
    flat = acc.reduce(torch.cat([t.flatten() for t in tensors]), reduction="mean")
    return [part.view_as(t) for part, t in zip(flat.split([t.numel() for t in tensors]), tensors)]


def roga_direction(
    params: list[torch.Tensor],
    domain_losses: list[Callable[[], torch.Tensor]],
    weights: list[float],
    rho: float,
    align: AlignFn,
    weight: float,
    model: nn.Module,
    reduce: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None,
    erm_loss: Callable[[], torch.Tensor] | None = None,
) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """The RoGA update direction d = g + weight * mean_k align(h_k, g) (see the module docstring).

    `domain_losses[k]()` does a forward pass of domain k's samples and returns their mean loss.
    g is the gradient of `erm_loss()` (the batch mean loss) when given, else sum_k weights[k] g_k
    (domains that partition the batch, weights[k] = n_k / n). `reduce` averages a gradient over
    processes (None: one process). Leaves the parameters as found and their `.grad` cleared.
    """
    g: list[torch.Tensor] | None = None
    if erm_loss is not None:
        erm_loss().backward()
        g = _take_grads(params)
    per_domain: list[list[torch.Tensor]] = []
    with bn_update_off(model) if g is not None else contextlib.nullcontext():
        for loss_k in domain_losses:
            loss_k().backward()
            per_domain.append(_take_grads(params))
    if g is None:
        g = [torch.zeros_like(p) for p in params]
        for w_k, g_k in zip(weights, per_domain):
            torch._foreach_add_(g, g_k, alpha=w_k)
    if reduce is not None:
        g = reduce(g)

    aligned = [torch.zeros_like(p) for p in params]
    with bn_update_off(model):
        for loss_k, g_k in zip(domain_losses, per_domain):
            step = torch._foreach_mul(g_k, rho / (norm(g_k) + 1e-12))
            with torch.no_grad():
                saved = [p.detach().clone() for p in params]
                torch._foreach_add_(params, step)
            loss_k().backward()
            h_k = _take_grads(params)
            with torch.no_grad():
                for p, old in zip(params, saved):
                    p.copy_(old)
            torch._foreach_add_(aligned, align(h_k, g), alpha=1.0 / len(domain_losses))
    if reduce is not None:
        aligned = reduce(aligned)
    cos = dot(aligned, g) / (norm(aligned) * norm(g)).clamp_min(1e-24)
    direction = torch._foreach_add(g, aligned, alpha=weight)
    return direction, {"domains": torch.tensor(float(len(domain_losses))), "align_cos": cos.detach()}


def domain_subsets(domain: torch.Tensor, label: torch.Tensor, reals: str) -> tuple[list[torch.Tensor], list[float]]:
    """Row masks of the domains present in a batch, and each domain's share n_k / n of the batch.

    `shared`: one mask per fake domain, the batch's reals in every one (a batch without fakes is one
    domain of reals); `own_domain`: one mask per `domain` value, reals included as their own.
    The number of passes depends on the data: one host sync per step.
    """
    if reals == "own_domain":
        keys = domain
    else:
        keys = torch.where(label == 1, domain, torch.full_like(domain, -1))
    values = torch.unique(keys).tolist()
    fake_domains = [v for v in values if v >= 0] if reals == "shared" else values
    if not fake_domains:
        fake_domains = values
    masks = []
    for v in fake_domains:
        rows = keys == v
        if reals == "shared" and v >= 0:
            rows = rows | (label == 0)
        masks.append(rows)
    n = domain.numel()
    return masks, [float(m.sum()) / n for m in masks]


@register_method("roga")
class RoGA(ERM):
    def check_config(self, cfg: TrainConfig) -> None:
        if cfg.optimizer.name == "sam":
            raise ConfigError(
                "optimizer.name: roga makes its own ascent steps (roga.rho); use sgd, adam or adamw as its base optimizer"
            )
        if cfg.mixed_precision == "fp16":
            raise ConfigError("mixed_precision: roga does not support fp16 loss scaling; use bf16 or no")
        if cfg.gradient_accumulation_steps != 1:
            raise ConfigError("gradient_accumulation_steps: roga takes one whole update per batch; use 1")

    def training_step(self, ctx: StepContext, batch: Batch) -> StepLogs:
        acc, cfg = ctx.accelerator, ctx.config
        detector = ctx.unwrapped
        params = [p for p in detector.parameters() if p.requires_grad]
        subsets, weights = domain_subsets(batch["domain"], batch["label"], cfg.roga.reals)
        first: dict[int, torch.Tensor] = {}

        def loss_of(k: int, rows: torch.Tensor | None) -> Callable[[], torch.Tensor]:
            sub = batch if rows is None else {key: value[rows] for key, value in batch.items()}

            def loss_k() -> torch.Tensor:
                with acc.autocast():
                    losses = detector.losses(sub, detector(sub))
                if k not in first:
                    first[k] = losses["overall"].detach()
                return losses["overall"]

            return loss_k

        reduce = (lambda ts: _flat_mean(acc, ts)) if acc.num_processes > 1 else None
        shared = cfg.roga.reals == "shared"
        direction, logs = roga_direction(
            params,
            [loss_of(k, rows) for k, rows in enumerate(subsets)],
            weights,
            cfg.roga.rho,
            ALIGN[cfg.roga.align],
            cfg.roga.weight,
            detector,
            reduce,
            erm_loss=loss_of(-1, None) if shared else None,
        )
        for p, d in zip(params, direction):
            p.grad = d
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        ctx.optimizer.step()
        ctx.optimizer.zero_grad(set_to_none=True)
        ctx.scheduler.step()
        overall = first[-1] if shared else sum(w * first[k] for k, w in enumerate(weights))
        return {"overall": overall, **logs}
