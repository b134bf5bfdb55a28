"""Step time of the published fair methods and of efficient SAM, relative to `erm`, in one run.

    python bench/train_methods.py                     # CPU: resnet18 at 64 px, batch 32
    python bench/train_methods.py --backbone efficientnet_b4 --resolution 256 --precision bf16   # a GPU

Every contender runs through the trainer's own path (method registry -> StepContext -> update rule,
bench/train.py's `fairforge_step`) on the same backbone, batch and in-memory data, interleaved in
rounds with medians. On a CPU the cost is also measured as this process's CPU time per step with one
intra-op thread: on a shared machine other jobs stretch the wall clock unevenly, not the work a step
does, so the CPU-time ratios are the ones to quote there. The batches carry 4 domains
(FF++'s manipulation types) for RoGA and all 8 groups for the fair losses; `*_reference` are the
`fair_loss: reference` modes (the authors' host-side threshold searches). `CASES` adds this file's
contenders to bench/train.py's `METHOD_OVERRIDES`; `python bench/train.py --methods ...` can time them too
after `register(METHOD_OVERRIDES)`.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

#: contender -> config on top of the shared benchmark config (a `method` key picks the method).
CASES: dict[str, dict[str, Any]] = {
    "dag_fdd": {"method": "dag_fdd", "optimizer": {"name": "adam"}, "model": {"heads": {"group": 0.0}}},
    "daw_fdd": {"method": "daw_fdd", "optimizer": {"name": "adam"}, "model": {"heads": {"group": 0.0}}},
    "daw_fdd_reference": {
        "method": "daw_fdd",
        "daw_fdd": {"fair_loss": "reference"},
        "optimizer": {"name": "adam"},
        "model": {"heads": {"group": 0.0}},
    },
    "pg_fdd": {"method": "pg_fdd", "optimizer": {"name": "sam", "base": "sgd"}},
    "pg_fdd_reference": {"method": "pg_fdd", "pg_fdd": {"fair_loss": "reference"}, "optimizer": {"name": "sam"}},
    "roga": {"method": "roga", "optimizer": {"name": "adam"}, "model": {"heads": {"group": 0.0}}},
    "roga_own_domain": {
        "method": "roga",
        "roga": {"reals": "own_domain"},
        "optimizer": {"name": "adam"},
        "model": {"heads": {"group": 0.0}},
    },
    "sam": {"method": "erm", "optimizer": {"name": "sam", "base": "adam"}, "model": {"heads": {"group": 0.0}}},
    "sam_every5": {
        "method": "erm",
        "optimizer": {"name": "sam", "base": "adam", "every": 5},
        "model": {"heads": {"group": 0.0}},
    },
    "looksam_every5": {
        "method": "erm",
        "optimizer": {"name": "sam", "base": "adam", "every": 5, "reuse": "looksam"},
        "model": {"heads": {"group": 0.0}},
    },
}

#: what one update costs, in forward+backward passes of the backbone over the batch (K: domains)
PASSES = {
    "erm": "1",
    "dag_fdd": "1",
    "daw_fdd": "1",
    "daw_fdd_reference": "1 (+ the host-side lambda searches)",
    "pg_fdd": "2 x 3 encoders + decoder (SAM)",
    "pg_fdd_reference": "2 x 3 encoders + decoder (SAM) (+ host searches)",
    "roga": "1 + 2K passes over the K fake domains, each with the reals",
    "roga_own_domain": "2 (as 2K passes over the K domain subsets)",
    "sam": "2",
    "sam_every5": "1.2",
    "looksam_every5": "1.2",
}


def register(overrides: dict[str, dict[str, Any]]) -> None:
    """Add this file's contenders to bench/train.py's `METHOD_OVERRIDES`."""
    overrides.update(CASES)


def _bench_train() -> Any:
    """bench/train.py as a module (bench/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_train", Path(__file__).with_name("train.py"))
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def timed(
    steps: dict[str, Callable[[dict], None]], batches: list[dict], rounds: int, device: torch.device
) -> dict[str, tuple[float, float]]:
    """Median (wall seconds, process CPU seconds) per step of each contender, in alternating rounds."""
    for step in steps.values():
        step(batches[0])
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            wall, cpu = time.perf_counter(), time.process_time()
            for batch in batches:
                step(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            n = len(batches)
            samples[name].append(((time.perf_counter() - wall) / n, (time.process_time() - cpu) / n))
    return {
        name: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for name, v in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", choices=["no", "bf16"], default="no")
    parser.add_argument("--steps", type=int, default=5, help="steps per round (5: one efficient-SAM cycle)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (1: CPU time = work)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from accelerate import Accelerator

    from fairforge.train.devices import no_accelerator

    bench = _bench_train()
    register(bench.METHOD_OVERRIDES)
    accelerator = Accelerator(cpu=no_accelerator(), mixed_precision=args.precision)
    device = accelerator.device
    batches = bench._batches(args, args.steps, device)
    g = torch.Generator().manual_seed(1)
    for batch in batches:
        batch["domain"] = torch.randint(0, 4, batch["label"].shape, generator=g).to(device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {device} ({name}), {args.backbone} @ {args.resolution}px, batch {args.batch_size}, {args.precision}")

    steps = {case: bench.fairforge_step(args, case, accelerator) for case in ["erm", *args.cases]}
    result = timed(steps, batches, args.rounds, device)
    column = 0 if device.type == "cuda" else 1
    wall0, cpu0 = result["erm"]
    print("\n| method | wall s/step | vs erm | CPU s/step | vs erm | passes per update |\n|---|---|---|---|---|---|")
    for case, (wall, cpu) in result.items():
        print(
            f"| {case} | {wall:.4f} | {wall / wall0:.2f}x | {cpu:.4f} | {cpu / cpu0:.2f}x | {PASSES.get(case, '?')} |"
        )
    ratio = {case: values[column] / result["erm"][column] for case, values in result.items()}
    unit = "step time" if column == 0 else "CPU time per step"
    if "sam_every5" in ratio:
        print(
            f"\nefficient SAM (every 5) / ERM {unit}: {ratio['sam_every5']:.3f} (target <= 1.3); "
            f"LookSAM (every 5): {ratio.get('looksam_every5', float('nan')):.3f}; plain SAM: {ratio.get('sam', float('nan')):.3f}"
        )


if __name__ == "__main__":
    main()
