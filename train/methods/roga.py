"""`roga`: robust gradient alignment across domains (after Qiu, Jiang & Tan, "RoGA: Towards Generalizable
Deepfake Detection through Robust Gradient Alignment", ICME 2025, arXiv 2505.20653).

The idea: a domain-generalization term should not fight the ERM objective. RoGA therefore takes
the ERM gradient as the reference and adds, per training domain, the gradient at that domain's
sharpness-aware ascent point, aligned with the ERM gradient, in one update. What this module does,
per update, with domains = the `domain` column of the manifests (manipulation types or datasets)
and K = the number of domains present in the process's batch:

1. For each domain k: forward/backward of the domain's samples at w -> g_k (mean loss over them).
   The ERM gradient is g = sum_k (n_k / n) g_k, the gradient of the batch mean loss.
2. For each domain k: move to the ascent point w + rho g_k / ||g_k|| (`roga.rho`), forward/backward
   of the domain's samples there -> h_k, move back.
3. Align each h_k with g (`roga.align`):
   - `pcgrad` (default): if h_k . g < 0, remove h_k's component along g,
     h_k - (h_k . g / ||g||^2) g; otherwise keep h_k (PCGrad's projection, Yu et al. 2020);
   - `sign`: keep the coordinates of h_k whose sign agrees with g, zero the others;
   - `none`: h_k as is (a per-domain SAM gradient added to ERM's).
4. Update with d = g + `roga.weight` * mean_k aligned h_k through the configured base optimizer.

Cost: 2K forward/backward calls over the domain subsets. Each sample is forwarded and
back-propagated twice (once at w, once at its domain's ascent point), so the arithmetic is SAM's
(~2x ERM); the extra cost over SAM is K-fold kernel-launch overhead and smaller per-call batches.
(A "K+1 backward passes" count is one full-batch ERM pass plus K ascent passes; computing
the K per-domain gradients at w by separate passes makes the ERM pass unnecessary: their weighted
sum IS the batch gradient.)

How this relates to the paper: the abstract and summaries describe exactly the ingredients above
(ERM gradient, per-domain parameter perturbations, gradient alignment, no extra regularizer); this
implementation was not compared with the authors' code (github.com/Lynn0925/RoGA), so the
alignment rule is a config choice rather than a claim: `pcgrad` is the default
("keep what agrees, project conflicts away"), `sign` the element-wise variant, `none` the ablation.

Batch norm: batch statistics are per domain subset (as in DomainBed-style per-domain batches); the
running statistics are updated by the K passes at w and frozen at the ascent points. Under DDP every
pass runs locally (each process may see a different K), then two flat all-reduces: g is averaged
first, so every process aligns with the global ERM gradient, and the aligned term second; the
update is the same on every process. fp16 loss scaling is not supported (use bf16 or no mixed
precision).
"""

from __future__ import annotations

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
) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """The RoGA update direction d = g + weight * mean_k align(h_k, g) (see the module docstring).

    `domain_losses[k]()` does a forward pass of domain k's samples and returns their mean loss;
    `weights[k]` is n_k / n. `reduce` averages a gradient over processes (None: one process).
    Leaves the parameters as found and their `.grad` cleared.
    """
    per_domain: list[list[torch.Tensor]] = []
    for loss_k in domain_losses:
        loss_k().backward()
        per_domain.append(_take_grads(params))
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
        domain = batch["domain"]
        values, counts = torch.unique(domain, return_counts=True)
        present = values.tolist()  # the number of passes depends on the data: a host sync, once per step
        weights = (counts / domain.numel()).tolist()
        first: dict[int, torch.Tensor] = {}

        def loss_of(k: int) -> Callable[[], torch.Tensor]:
            rows = domain == k
            sub = {key: value[rows] for key, value in batch.items()}

            def loss_k() -> torch.Tensor:
                with acc.autocast():
                    losses = detector.losses(sub, detector(sub))
                if k not in first:
                    first[k] = losses["overall"].detach()
                return losses["overall"]

            return loss_k

        reduce = (lambda ts: _flat_mean(acc, ts)) if acc.num_processes > 1 else None
        direction, logs = roga_direction(
            params,
            [loss_of(k) for k in present],
            weights,
            cfg.roga.rho,
            ALIGN[cfg.roga.align],
            cfg.roga.weight,
            detector,
            reduce,
        )
        for p, d in zip(params, direction):
            p.grad = d
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        ctx.optimizer.step()
        ctx.optimizer.zero_grad(set_to_none=True)
        ctx.scheduler.step()
        overall = sum(w * first[k] for w, k in zip(weights, present))
        return {"overall": overall, **logs}
