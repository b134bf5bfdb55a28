"""fairforge.train.losses: the CVaR family against its definition, LDAM, the triplet loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import optimize, special

from fairforge.train.losses import (
    FLOAT32_EXP_LIMIT,
    bilevel_cvar,
    cvar,
    disentangle_contrastive_loss,
    ldam_loss,
    ldam_margins,
    searched_cvar,
    smoothed_cvar,
)

FFPP_COUNTS = [2475, 25443, 1468, 4163, 8013, 31281, 1111, 2185]


def _grid_min(objective, losses: torch.Tensor, points: int = 20_001) -> float:
    """Brute force: min of objective(lambda) on a grid, then on a finer grid around the best point."""
    lo = float(torch.minimum(losses.min(), torch.zeros(()))) - 1.0
    hi = float(losses.max()) + 1.0
    for _ in range(4):
        grid = torch.linspace(lo, hi, points, dtype=torch.float64)
        values = torch.cat([objective(chunk) for chunk in grid.split(10_000)])
        best = int(values.argmin())
        step = (hi - lo) / (points - 1)
        lo, hi = float(grid[best]) - 2 * step, float(grid[best]) + 2 * step
    return float(values.min())


def _cvar_objective(losses: torch.Tensor, alpha: float):
    return lambda lam: lam + (losses[None, :] - lam[:, None]).clamp_min(0).mean(1) / alpha


def _smoothed_objective(losses: torch.Tensor, alpha: float, tau1: float, tau2: float):
    return lambda lam: (
        lam + tau2 / (2 * alpha) * lam**2 + (tau1 * F.softplus((losses[None, :] - lam[:, None]) / tau1)).mean(1) / alpha
    )


@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("n", [1, 2, 9, 64])
def test_cvar_equals_brute_force_min_over_lambda(alpha: float, n: int) -> None:
    gen = torch.Generator().manual_seed(n * 100 + int(alpha * 100))
    losses = torch.rand(n, generator=gen, dtype=torch.float64) * 4.0
    assert float(cvar(losses, alpha)) == pytest.approx(_grid_min(_cvar_objective(losses, alpha), losses), abs=1e-6)


@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.9])
def test_smoothed_cvar_equals_brute_force_min_over_lambda(alpha: float) -> None:
    gen = torch.Generator().manual_seed(7)
    for n in (1, 3, 8):
        losses = torch.rand(n, generator=gen, dtype=torch.float64) * 2.0
        expected = _grid_min(_smoothed_objective(losses, alpha, 1e-3, 1e-4), losses)
        assert float(smoothed_cvar(losses, alpha, 1e-3, 1e-4)) == pytest.approx(expected, abs=1e-6)


def test_cvar_gradient_weights_the_worst_fraction() -> None:
    losses = torch.tensor([1.0, 4.0, 2.0, 3.0], requires_grad=True)
    value = cvar(losses, 0.5)  # mean of the two largest: (4 + 3) / 2
    value.backward()
    assert value.detach().item() == pytest.approx(3.5)
    assert losses.grad.tolist() == pytest.approx([0.0, 0.5, 0.0, 0.5])


def test_cvar_fractional_boundary_and_mask() -> None:
    losses = torch.tensor([[5.0, 1.0, 3.0], [2.0, 9.0, 4.0]])
    # alpha n = 0.5 * 3 = 1.5: (5 + 0.5 * 3) / 1.5
    assert cvar(losses, 0.5)[0].item() == pytest.approx((5 + 0.5 * 3) / 1.5)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    out = cvar(losses, 0.5, mask=mask)  # row 0: {5, 1}, alpha n = 1 -> 5; row 1: empty -> 0
    assert out.tolist() == pytest.approx([5.0, 0.0])


def test_cvar_rejects_bad_alpha() -> None:
    with pytest.raises(ValueError, match="alpha"):
        cvar(torch.ones(3), 0.0)


def test_bilevel_cvar_on_hand_built_batch() -> None:
    # group 0: losses 1, 2, 3, 4 -> inner CVaR_0.5 = (4 + 3) / 2 = 3.5
    # group 2: losses 10, 0     -> inner CVaR_0.5 = 10
    # group 5: loss 6           -> 6; group 1, 3, 4, 6, 7 absent; a -1 (unknown) sample is ignored
    losses = torch.tensor([1.0, 10.0, 2.0, 6.0, 3.0, 0.0, 4.0, 100.0], dtype=torch.float64)
    groups = torch.tensor([0, 2, 0, 5, 0, 2, 0, -1])
    # outer over {3.5, 10, 6} with alpha 0.5: k = 1.5 -> (10 + 0.5 * 6) / 1.5
    value = bilevel_cvar(losses, groups, num_groups=8, inner_alpha=0.5, outer_alpha=0.5)
    assert float(value) == pytest.approx((10 + 0.5 * 6) / 1.5)
    # inner 1.0 = group means {2.5, 5, 6}; outer 1.0 = their mean (absent groups not counted as 0)
    value = bilevel_cvar(losses, groups, num_groups=8, inner_alpha=1.0, outer_alpha=1.0)
    assert float(value) == pytest.approx((2.5 + 5 + 6) / 3)


def test_bilevel_cvar_published_levels_and_smoothing() -> None:
    losses = torch.tensor([0.2, 0.9, 0.4, 1.5, 0.3, 0.8], dtype=torch.float64, requires_grad=True)
    groups = torch.tensor([0, 0, 0, 1, 1, 3])
    inner = torch.stack([cvar(losses[groups == g], 0.9) for g in (0, 1, 3)])
    exact = bilevel_cvar(losses, groups, 8, 0.9, 0.5)
    assert exact.item() == pytest.approx(cvar(inner, 0.5).item())
    smooth = bilevel_cvar(losses, groups, 8, 0.9, 0.5, smooth=(1e-3, 1e-4))
    expected = _grid_min(_smoothed_objective(inner.detach(), 0.5, 1e-3, 1e-4), inner.detach())
    assert smooth.detach().item() == pytest.approx(expected, abs=1e-6)
    smooth.backward()
    assert torch.isfinite(losses.grad).all() and losses.grad.sum() > 0


def test_bilevel_cvar_all_unknown_is_zero_with_graph() -> None:
    losses = torch.rand(4, requires_grad=True)
    value = bilevel_cvar(losses, torch.full((4,), -1), 8)
    value.backward()
    assert value.detach().item() == 0.0 and losses.grad is not None


def test_ldam_margins_ffpp() -> None:
    margins = ldam_margins(FFPP_COUNTS, max_margin=0.5)
    assert margins.tolist() == pytest.approx([0.409, 0.229, 0.466, 0.359, 0.305, 0.217, 0.500, 0.422], abs=5e-4)


def test_ldam_loss_matches_definition_and_ignores_unknown() -> None:
    torch.manual_seed(0)
    logits = torch.randn(5, 8)
    target = torch.tensor([0, 6, 3, -1, 1])
    margins = ldam_margins(FFPP_COUNTS)
    known = target >= 0
    shifted = logits[known].clone()
    shifted[torch.arange(int(known.sum())), target[known]] -= margins[target[known]]
    expected = F.cross_entropy(30.0 * shifted, target[known])
    assert float(ldam_loss(logits, target, margins, scale=30.0)) == pytest.approx(float(expected), rel=1e-6)


def test_contrastive_loss_zero_when_classes_are_far_apart() -> None:
    label = torch.tensor([0, 0, 1, 1])
    spe = torch.tensor([0, 0, 1, 2])
    far = torch.tensor([[0.0, 0.0], [0.0, 0.1], [10.0, 10.0], [10.0, 10.1]])
    assert float(disentangle_contrastive_loss(far, far, label, spe, margin=3.0)) == 0.0
    same = torch.zeros(4, 2)  # every distance 0: each of the 4 averaged terms is the margin
    assert float(disentangle_contrastive_loss(same, same, label, spe, margin=3.0)) == pytest.approx(12.0)
    one_class = disentangle_contrastive_loss(same, same, torch.zeros(4, dtype=torch.long), spe, margin=3.0)
    assert float(one_class) == 0.0  # no negatives: nothing to contrast


# ---- the authors' code's numbers (`fair_loss: reference`) against a float32 re-derivation ----

TAU1, TAU2 = 1e-3, 1e-4


def _reference_lambda(group_losses: np.ndarray, alpha: float) -> float:
    """The authors' smoothed outer search re-derived in numpy float32: float max where exp overflows."""
    values = group_losses.astype(np.float32)

    def objective(x: float) -> float:
        z = (values - np.float32(x)) / np.float32(TAU1)
        with np.errstate(over="ignore"):
            e = np.exp(z)
        if np.isinf(e).any():
            return float(np.finfo(np.float64).max)
        return x + TAU2 / (2 * alpha) * x**2 + float(np.mean(np.float32(TAU1) * np.log1p(e))) / alpha

    return float(optimize.fminbound(objective, float(values.min()) - 1000.0, float(values.max())))


def _outer_weights(group_losses: list[float], **kwargs: object) -> torch.Tensor:
    """d loss / d group loss of the fused loss's outer level: one sample per group, inner CVaR = its loss."""
    losses = torch.tensor(group_losses, requires_grad=True)
    groups = torch.arange(len(group_losses))
    bilevel_cvar(losses, groups, len(group_losses), 0.9, 0.5, smooth=(TAU1, TAU2), **kwargs).backward()
    return losses.grad


@pytest.mark.parametrize(
    ("group_losses", "confined"),
    [
        ([0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.7, 0.9], True),  # the paper's lambda ~0.45 < 0.9 - 0.0887
        ([0.50, 0.52, 0.55, 0.58, 0.60, 0.62, 0.66, 0.70], True),  # ~0.60 < 0.70 - 0.0887: a little
        ([0.62, 0.64, 0.66, 0.69, 0.70, 0.71, 0.73, 0.74], False),  # ~0.70 > 0.74 - 0.0887
        ([0.30, 0.31, 0.33, 0.35], False),
    ],
)
def test_reference_fused_loss_is_the_float32_confined_search(group_losses: list[float], confined: bool) -> None:
    values = np.array(group_losses)
    limit = float(np.log(np.finfo(np.float32).max))  # 88.72: exp(z) is inf in float32 above it
    assert FLOAT32_EXP_LIMIT == pytest.approx(limit)
    lam = _reference_lambda(values, 0.5)
    assert lam >= values.max() - TAU1 * limit - 1e-6  # confined: max - 0.0887 or above
    # inner CVaR of a one-sample group is that sample's loss times 1/0.9 in the gradient (boundary rule)
    expected = (1 / 0.9) * (1 / (0.5 * len(values))) * special.expit((values - lam) / TAU1)
    got = _outer_weights(group_losses, reference=True).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-3)
    paper = _outer_weights(group_losses).numpy()
    # the paper's minimizer: stationary, so the weights add up to 1 + tau2 lambda*/alpha (~1)
    assert paper.sum() == pytest.approx(1.0, abs=1e-3)
    if confined:
        assert lam == pytest.approx(values.max() - TAU1 * limit, abs=2e-4)  # lambda sits on the boundary
        assert got.sum() < 1.0  # the confinement removes weight: less than the paper's 1
    else:
        assert got.sum() == pytest.approx(1 / 0.9, abs=2e-2)  # only the inner boundary rule differs


def test_reference_plain_cvar_gives_a_one_sample_group_the_full_weight() -> None:
    single = torch.tensor([0.7], requires_grad=True)
    value = searched_cvar(single, 0.9)
    value.backward()
    assert float(value.detach()) == pytest.approx(0.7, abs=1e-4)
    assert float(single.grad) == pytest.approx(1 / 0.9, rel=1e-6)  # the paper's exact CVaR: 1.0
    exact = torch.tensor([0.7], requires_grad=True)
    cvar(exact, 0.9).backward()
    assert float(exact.grad) == pytest.approx(1.0)


def test_reference_plain_cvar_weights_are_all_or_nothing_and_its_value_exact() -> None:
    torch.manual_seed(0)
    for n, alpha in ((10, 0.5), (7, 0.9), (5, 0.5), (32, 0.5)):
        losses = (torch.rand(n) * 2).requires_grad_(True)
        value = searched_cvar(losses, alpha)
        value.backward()
        assert float(value.detach()) == pytest.approx(float(cvar(losses.detach(), alpha)), abs=1e-4)
        weights = losses.grad * alpha * n
        assert torch.all((weights.abs() < 1e-6) | ((weights - 1).abs() < 1e-5)), weights  # 0 or 1/(alpha n)
        top = losses.detach().argsort(descending=True)[: int(alpha * n)]
        assert torch.allclose(weights[top], torch.ones(len(top)))  # the alpha n worst always get it


def test_reference_bilevel_cvar_on_a_batch_with_unknown_groups() -> None:
    losses = torch.tensor([0.2, 0.9, 0.4, 0.5, 0.1], requires_grad=True)
    groups = torch.tensor([0, 0, 1, -1, 2])
    value = bilevel_cvar(losses, groups, 8, 0.9, 0.5, reference=True)
    value.backward()
    assert float(value.detach()) == pytest.approx(float(bilevel_cvar(losses.detach(), groups, 8, 0.9, 0.5)), abs=1e-4)
    assert float(losses.grad[3]) == 0.0  # unknown group: left out, as in paper mode
    none = bilevel_cvar(losses, torch.full((5,), -1), 8, reference=True)
    assert float(none.detach()) == 0.0 and none.requires_grad
