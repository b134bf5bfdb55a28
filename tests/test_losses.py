"""fairforge.train.losses: the CVaR family against its definition, LDAM, the triplet loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fairforge.train.losses import (
    bilevel_cvar,
    cvar,
    disentangle_contrastive_loss,
    ldam_loss,
    ldam_margins,
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
