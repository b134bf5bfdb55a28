"""How much gradient the fused fairness loss passes on: PG-FDD's paper formula vs its authors' code.

    python bench/fair_loss_weights.py [--batches 200] [--batch-size 32]

The total weight is sum_i d L_fuse / d l_i over a batch's per-sample losses: 1 + tau2 lambda/alpha
(~1) at the paper's exact minimizer; less where the authors' float32 search confines lambda to
>= max group loss - 88.72 tau1 (`fairforge.train.losses.searched_cvar`). Batches follow FF++'s
gender-race frequencies (the counts in the authors' LDAM config); per-sample losses are the
cross-entropy softplus(-m) of margins m ~ N(mu, 1.5), mu 0 / 2 / 4 standing for early / mid / late
training. The losses are simulated, so the figures show the size of the effect, not a run's.

The second table is the inner level's boundary rule: on random groups of 1-11 losses, where the
authors' plain-CVaR search leaves the boundary sample (the ceil(alpha n)-th largest loss): weighted
fully (1/(alpha n)), or not at all, where the exact CVaR gives it the fraction alpha n - floor(alpha n).
"""

from __future__ import annotations

import argparse
import math

import torch

from fairforge.train.losses import bilevel_cvar, searched_cvar

FFPP_GROUP_COUNTS = (2475, 25443, 1468, 4163, 8013, 31281, 1111, 2185)
STAGES = {"early": 0.0, "mid": 2.0, "late": 4.0}


def total_weight(losses: torch.Tensor, groups: torch.Tensor, reference: bool) -> float:
    leaf = losses.clone().requires_grad_(True)
    bilevel_cvar(leaf, groups, len(FFPP_GROUP_COUNTS), 0.9, 0.5, smooth=(1e-3, 1e-4), reference=reference).backward()
    return float(leaf.grad.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--groups", type=int, default=600, help="random groups for the boundary table")
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(args.seed)
    frequencies = torch.tensor(FFPP_GROUP_COUNTS, dtype=torch.float64)
    print(f"{args.batches} batches of {args.batch_size}, FF++ group frequencies\n")
    print("| stage | mean loss | paper: mean total weight | reference: mean total weight | batches below 0.99 |")
    print("|---|---|---|---|---|")
    for stage, mu in STAGES.items():
        paper, reference, below, mean_loss = [], [], 0, 0.0
        for _ in range(args.batches):
            groups = torch.multinomial(frequencies, args.batch_size, replacement=True, generator=generator)
            margins = mu + 1.5 * torch.randn(args.batch_size, generator=generator)
            losses = torch.nn.functional.softplus(-margins).float()
            mean_loss += float(losses.mean()) / args.batches
            paper.append(total_weight(losses, groups, reference=False))
            reference.append(total_weight(losses, groups, reference=True))
            below += reference[-1] < 0.99
        print(
            f"| {stage} | {mean_loss:.3f} | {sum(paper) / len(paper):.3f} | {sum(reference) / len(reference):.3f} "
            f"| {below} of {args.batches} |"
        )
    boundary_table(args.groups, generator)


def boundary_table(groups: int, generator: torch.Generator) -> None:
    print(f"\n{groups} random groups of 1-11 losses: the searched threshold vs the boundary sample\n")
    print("| alpha | alpha n | boundary weighted fully | not at all | one-sample groups weighted 1/alpha |")
    print("|---|---|---|---|---|")
    for alpha in (0.9, 0.5):
        counts = {"integer": [0, 0, 0], "fractional": [0, 0, 0]}
        singles = [0, 0]
        for _ in range(groups // 2):
            n = int(torch.randint(1, 12, (1,), generator=generator))
            losses = (2 * torch.rand(n, generator=generator)).requires_grad_(True)
            searched_cvar(losses, alpha).backward()
            weighted = int((losses.grad > 0.5 / (alpha * n)).sum())
            k = alpha * n
            kind = "integer" if abs(k - round(k)) < 1e-9 else "fractional"
            counts[kind][0 if weighted == math.ceil(k) else 1 if weighted == math.floor(k) else 2] += 1
            if n == 1:
                singles[0] += abs(float(losses.grad[0]) - 1 / alpha) < 1e-5
                singles[1] += 1
        for kind, (full, none, other) in counts.items():
            extra = f" ({other} other)" if other else ""
            single = f"{singles[0]} of {singles[1]}" if kind == "fractional" else "-"
            print(f"| {alpha} | {kind} | {full} | {none}{extra} | {single} |")


if __name__ == "__main__":
    main()
