"""Losses of the published fair deepfake detectors (DAG-FDD, DAW-FDD, PG-FDD), exact and on-device.

Why a module of its own: the CVaR family is the core of three methods and is easy to get subtly wrong.
The published code finds the CVaR threshold lambda with `scipy.optimize.fminbound` on the CPU every
step (a device->host copy, a scalar search with tolerance 1e-5, and a loss that is only approximately
the CVaR). Here:

* `cvar` is exact: the CVaR of a finite sample, min_lambda lambda + 1/(alpha n) sum (l_i - lambda)_+,
  is the mean of the alpha n largest losses, the boundary one taken fractionally (a sorted partial
  mean). No search, no host round trip, differentiable (its gradient is the envelope-theorem
  gradient of the published loss at the optimal lambda), batched over leading dimensions and
  optionally masked, so one call computes the CVaR of every demographic group at once.
* `smoothed_cvar` is PG-FDD's smoothed outer level, lambda + tau2/(2 alpha) lambda^2 +
  1/alpha mean(tau1 softplus((l - lambda)/tau1)). It has no closed form; its lambda is the root of
  a monotone derivative, found on the device by a fixed number of safeguarded Newton steps in
  float64 (no host sync), then the loss is evaluated at the detached optimum, which by the envelope
  theorem has the same value and gradient as the published loss at its searched optimum.
* `bilevel_cvar` is DAW-FDD's loss (inner CVaR per intersectional group, outer CVaR over the groups
  present in the batch) and, with `smooth=(tau1, tau2)`, PG-FDD's fair fusion loss.
* `searched_cvar` (and `bilevel_cvar(..., reference=True)`) is the authors' code's behaviour, for
  reproducing their numbers: lambda searched by `scipy.optimize.fminbound` on the host over
  [min - 1000, max] of the float32 objective, the loss then taken at that lambda. Two of its
  numbers differ from the definition above: the searched lambda of a plain CVaR lands on either
  side of the boundary loss, so the boundary sample gets the full weight 1/(alpha n) or none (a
  one-sample group always the full weight: 1/0.9 = 1.11 of its loss's gradient at alpha 0.9); and
  the smoothed objective returns float max wherever exp((l - lambda)/tau1) overflows float32,
  which confines lambda to >= max(l) - tau1 ln(float32 max) = max(l) - 88.72 tau1, where the
  weights (1/(alpha n)) sigmoid((l - lambda)/tau1) add up to less than 1.

Conventions follow the papers: `alpha` is the fraction of the worst losses averaged (alpha = 1 is the
plain mean, alpha -> 0 the maximum).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "bilevel_cvar",
    "cvar",
    "disentangle_contrastive_loss",
    "ldam_loss",
    "ldam_margins",
    "searched_cvar",
    "smoothed_cvar",
]


def _check_alpha(alpha: float, name: str = "alpha") -> None:
    if not 0.0 < float(alpha) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {alpha!r}")


def cvar(losses: torch.Tensor, alpha: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Exact CVaR_alpha of `losses` along the last dimension: the mean of the alpha-fraction largest.

    `mask` (bool, same shape) selects the entries that belong to each row; a row with no entry gives 0.
    Equal to min over lambda of lambda + 1/(alpha n) sum_i max(l_i - lambda, 0) (tested against a
    brute-force grid), computed by sorting: with k = alpha n, the k largest losses get weight 1/k and
    the boundary one the remainder (k - floor k)/k.
    """
    _check_alpha(alpha)
    if losses.dim() == 0:
        raise ValueError("cvar needs at least one dimension of losses, got a scalar")
    size = losses.shape[-1]
    positions = torch.arange(size, device=losses.device, dtype=torch.float64)
    if mask is None:
        values = losses.sort(dim=-1, descending=True).values
        k = torch.full(losses.shape[:-1] + (1,), alpha * size, device=losses.device, dtype=torch.float64)
    else:
        if mask.shape != losses.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} differs from losses shape {tuple(losses.shape)}")
        values = losses.masked_fill(~mask, float("-inf")).sort(dim=-1, descending=True).values
        k = alpha * mask.sum(dim=-1, keepdim=True).to(torch.float64)
    # weight of the j-th largest: 1 while j + 1 <= k, the fraction k - j at the boundary, 0 after it
    weights = (k - positions).clamp(0.0, 1.0) / k.clamp_min(torch.finfo(torch.float64).tiny)
    weights = weights.to(losses.dtype)
    return torch.where(weights > 0, values, torch.zeros_like(values)).mul(weights).sum(dim=-1)


def _smoothed_objective_grad(
    lam: torch.Tensor,
    losses: torch.Tensor,
    mask: torch.Tensor,
    count: torch.Tensor,
    alpha: float,
    tau1: float,
    tau2: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """First and second derivative in lambda of the smoothed CVaR objective (float64, masked mean)."""
    s = torch.sigmoid((losses - lam) / tau1) * mask
    d1 = 1.0 + (tau2 / alpha) * lam.squeeze(-1) - s.sum(-1) / (alpha * count)
    d2 = tau2 / alpha + (s * (1.0 - s)).sum(-1) / (alpha * tau1 * count)
    return d1, d2


def _smoothed_lambda(
    losses: torch.Tensor, mask: torch.Tensor, alpha: float, tau1: float, tau2: float, iterations: int
) -> torch.Tensor:
    """The minimizing lambda of the smoothed CVaR objective, per row, without leaving the device.

    The derivative is strictly increasing (the objective is strictly convex: tau2 > 0), so a root is
    bracketed by [lo, hi] with lo below every loss by 50 tau1 (all sigmoids ~1, derivative < 0) and hi
    above every loss by 50 tau1 (all sigmoids ~0, derivative > 0). Each iteration takes the Newton step
    when it stays inside the bracket and bisects otherwise, then shrinks the bracket by the sign of
    the derivative: convergence is guaranteed and quadratic near the root. The start is the exact
    (unsmoothed) CVaR threshold, the alpha-quantile, which is within a few tau1 of the answer.
    """
    x = losses.detach().to(torch.float64)
    m = mask.to(torch.float64)
    count = m.sum(-1).clamp_min(1.0)
    big = torch.finfo(torch.float64).max
    lo = torch.where(mask, x, torch.full_like(x, big)).amin(-1).clamp_max(0.0) - 50.0 * tau1 - 1.0
    hi = torch.where(mask, x, torch.full_like(x, -big)).amax(-1).clamp_min(0.0) + 50.0 * tau1 + 1.0
    # start: the alpha-quantile from the top (the exact CVaR's lambda), clipped into the bracket
    ranked = torch.where(mask, x, torch.full_like(x, -math.inf)).sort(-1, descending=True).values
    index = (alpha * count).ceil().long().clamp(1, x.shape[-1]) - 1
    lam = ranked.gather(-1, index.unsqueeze(-1)).squeeze(-1)
    lam = torch.where(torch.isfinite(lam), lam, (lo + hi) / 2).clamp(lo, hi)
    for _ in range(iterations):
        d1, d2 = _smoothed_objective_grad(lam.unsqueeze(-1), x, m, count, alpha, tau1, tau2)
        lo = torch.where(d1 < 0, lam, lo)
        hi = torch.where(d1 >= 0, lam, hi)
        newton = lam - d1 / d2
        inside = (newton > lo) & (newton < hi)
        lam = torch.where(inside, newton, (lo + hi) / 2)
    return lam


def smoothed_cvar(
    losses: torch.Tensor,
    alpha: float,
    tau1: float = 1e-3,
    tau2: float = 1e-4,
    mask: torch.Tensor | None = None,
    iterations: int = 48,
) -> torch.Tensor:
    """PG-FDD's smoothed CVaR along the last dimension, at its exact minimizing lambda.

    Value: lambda* + tau2/(2 alpha) lambda*^2 + 1/alpha mean_i tau1 softplus((l_i - lambda*)/tau1),
    minimized over lambda (the published `search_func_smooth`/`searched_lamda_loss_smooth`). The
    gradient flows through the losses only (lambda* detached): at the optimum the objective's
    derivative in lambda is zero, so this is the true gradient of the minimum.
    """
    _check_alpha(alpha)
    if tau1 <= 0 or tau2 <= 0:
        raise ValueError(f"tau1 and tau2 must be > 0, got tau1={tau1!r}, tau2={tau2!r}")
    if mask is None:
        mask = torch.ones_like(losses, dtype=torch.bool)
    elif mask.shape != losses.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from losses shape {tuple(losses.shape)}")
    lam = _smoothed_lambda(losses, mask, alpha, tau1, tau2, iterations).to(losses.dtype).unsqueeze(-1)
    count = mask.sum(-1).clamp_min(1).to(losses.dtype)
    soft = tau1 * F.softplus((losses - lam) / tau1) * mask
    lam = lam.squeeze(-1)
    return lam + (tau2 / (2.0 * alpha)) * lam.square() + soft.sum(-1) / (alpha * count)


def bilevel_cvar(
    losses: torch.Tensor,
    groups: torch.Tensor,
    num_groups: int,
    inner_alpha: float = 0.9,
    outer_alpha: float = 0.5,
    smooth: tuple[float, float] | None = None,
    reference: bool = False,
) -> torch.Tensor:
    """DAW-FDD's bi-level CVaR: CVaR_inner within each group, CVaR_outer over the groups present.

    `groups` holds each sample's group index in [0, num_groups); an index outside that range (e.g. -1
    for an unknown attribute) leaves the sample out of the fairness loss. Groups absent from the batch
    are skipped, not counted as zero. With `smooth=(tau1, tau2)` the outer level is PG-FDD's smoothed
    CVaR. An all-unknown batch gives 0 (with a graph, so DDP sees every parameter used).
    `reference=True`: the authors' code's numbers instead (`searched_cvar` at both levels).
    """
    _check_alpha(inner_alpha, "inner_alpha")
    _check_alpha(outer_alpha, "outer_alpha")
    if losses.shape != groups.shape or losses.dim() != 1:
        raise ValueError(
            f"losses and groups must be 1-D of equal length, got {tuple(losses.shape)} and {tuple(groups.shape)}"
        )
    if reference:
        return _reference_bilevel_cvar(losses, groups, num_groups, inner_alpha, outer_alpha, smooth)
    member = groups.unsqueeze(0) == torch.arange(num_groups, device=groups.device).unsqueeze(1)
    inner = cvar(losses.unsqueeze(0).expand(num_groups, -1), inner_alpha, mask=member)
    present = member.any(dim=1)
    if smooth is None:
        outer = cvar(inner, outer_alpha, mask=present)
    else:
        outer = smoothed_cvar(inner, outer_alpha, smooth[0], smooth[1], mask=present)
    return torch.where(present.any(), outer, losses.sum() * 0.0)


#: exp(z) overflows float32 for z above this: ln(float32 max)
FLOAT32_EXP_LIMIT = math.log(float(torch.finfo(torch.float32).max))


def _fminbound(objective: Callable[[float], float], losses: torch.Tensor) -> float:
    """The authors' threshold search: scipy's bounded Brent method on [min - 1000, max] (tolerance 1e-5)."""
    from scipy import optimize

    return float(optimize.fminbound(objective, float(losses.min()) - 1000.0, float(losses.max())))


def searched_cvar(losses: torch.Tensor, alpha: float, smooth: tuple[float, float] | None = None) -> torch.Tensor:
    """The authors' code's CVaR of a 1-D `losses` (see the module docstring): their lambda, their loss.

    Plain: lambda + 1/alpha mean((l - lambda)_+); `smooth=(tau1, tau2)`: lambda + tau2/(2 alpha)
    lambda^2 + 1/alpha mean(tau1 log(1 + exp((l - lambda)/tau1))), float max where the exp
    overflows. The objective is evaluated in float32 on the CPU (one host copy, ~30 evaluations);
    the loss at the searched lambda is computed on the losses' device and differentiates through
    the losses only.
    """
    _check_alpha(alpha)
    if losses.dim() != 1 or losses.numel() == 0:
        raise ValueError(f"searched_cvar needs a non-empty 1-D tensor of losses, got shape {tuple(losses.shape)}")
    host = losses.detach().to("cpu", torch.float32)
    if smooth is None:

        def objective(x: float) -> float:
            return x + (1.0 / alpha) * torch.relu(host - x).mean().item()

        lam = _fminbound(objective, host)
        return lam + (1.0 / alpha) * torch.relu(losses - lam).mean()
    tau1, tau2 = smooth

    def smooth_objective(x: float) -> float:
        z = torch.exp((host - x) / tau1)
        if torch.isinf(z).any():
            return float(torch.finfo(torch.float64).max)
        return x + (tau2 / (2 * alpha)) * x**2 + (1.0 / alpha) * torch.relu(tau1 * torch.log(1 + z)).mean().item()

    lam = _fminbound(smooth_objective, host)
    soft = torch.relu(tau1 * torch.log(1 + torch.exp((losses - lam) / tau1)))
    return lam + (tau2 / (2 * alpha)) * lam**2 + (1.0 / alpha) * soft.mean()


def _reference_bilevel_cvar(
    losses: torch.Tensor,
    groups: torch.Tensor,
    num_groups: int,
    inner_alpha: float,
    outer_alpha: float,
    smooth: tuple[float, float] | None,
) -> torch.Tensor:
    """`bilevel_cvar` as the authors' code computes it: a searched CVaR per group present, then over them."""
    known = (groups >= 0) & (groups < num_groups)
    present = torch.unique(groups[known]).tolist()
    if not present:
        return losses.sum() * 0.0
    inner = torch.stack([searched_cvar(losses[groups == g], inner_alpha) for g in present])
    return searched_cvar(inner, outer_alpha, smooth)


def ldam_margins(counts: Sequence[int] | torch.Tensor, max_margin: float = 0.5) -> torch.Tensor:
    """LDAM margins m_g = C n_g^(-1/4), with C chosen so the rarest class gets `max_margin`.

    Cao et al. 2019, as PG-FDD uses it on the intersectional group head (larger margins for minority
    groups). A class with count 0 never appears as a target, so its margin is irrelevant; it gets
    `max_margin` (the normalization uses the positive counts only).
    """
    n = torch.as_tensor(counts, dtype=torch.float64).flatten()
    if n.numel() == 0 or bool((n < 0).any()) or not bool((n > 0).any()):
        raise ValueError(f"ldam_margins needs non-negative counts with at least one positive, got {n.tolist()}")
    raw = torch.where(n > 0, n.clamp_min(1.0).pow(-0.25), torch.zeros_like(n))
    margins = raw * (max_margin / raw.max())
    return torch.where(n > 0, margins, torch.full_like(n, max_margin)).to(torch.float32)


def ldam_loss(logits: torch.Tensor, target: torch.Tensor, margins: torch.Tensor, scale: float = 30.0) -> torch.Tensor:
    """LDAM: cross-entropy of scale * (logits - the true class's margin on the true class's logit).

    Rows with a negative target (unknown group) are left out of the mean; with none known the loss is
    0 and stays in the graph (no host sync, and DDP still sees the head used).
    """
    known = target >= 0
    target = target.clamp_min(0)
    shift = F.one_hot(target, logits.shape[-1]).to(logits.dtype) * margins.to(logits)[target].unsqueeze(-1)
    per_row = F.cross_entropy(scale * (logits - shift), target, reduction="none")
    return (per_row * known).sum() / known.sum().clamp_min(1)


def _random_partner(candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row i, a uniformly random column j with candidates[i, j], and whether one exists.

    Gumbel-max over the allowed columns: vectorized, on the device, no host sync.
    """
    noise = torch.rand(candidates.shape, device=candidates.device)
    scores = torch.where(candidates, noise, torch.full_like(noise, -1.0))
    return scores.argmax(dim=1), candidates.any(dim=1)


def disentangle_contrastive_loss(
    common: torch.Tensor,
    specific: torch.Tensor,
    label: torch.Tensor,
    spe_label: torch.Tensor,
    margin: float = 3.0,
) -> torch.Tensor:
    """PG-FDD's triplet contrastive loss on the domain-agnostic and domain-specific features.

    For each anchor: agnostic ("common") features, positive = a random sample with the same real/fake
    label, negative = a random sample with the other label; specific features, positive = a random
    sample with the same specific label (real or the same manipulation), negative = a random sample
    with the other real/fake label. Hinge max(d(a, p) - d(a, n) + margin, 0) with Euclidean distance,
    averaged over the real anchors and over the fake anchors separately and summed (4 terms), exactly
    the published loss on its real-half/fake-half batches; here the halves need not be ordered or
    equal, and a class absent from the batch contributes 0.
    """
    same_label = label.unsqueeze(0) == label.unsqueeze(1)
    same_spe = spe_label.unsqueeze(0) == spe_label.unsqueeze(1)
    total = common.sum() * 0.0
    for features, positives in ((common, same_label), (specific, same_spe)):
        pos, _ = _random_partner(positives)
        neg, has_neg = _random_partner(~same_label)
        hinge = (
            F.pairwise_distance(features, features[pos]) - F.pairwise_distance(features, features[neg]) + margin
        ).clamp_min(0.0)
        for cls in (0, 1):
            take = ((label == cls) & has_neg).to(hinge.dtype)
            total = total + (hinge * take).sum() / take.sum().clamp_min(1.0)
    return total
