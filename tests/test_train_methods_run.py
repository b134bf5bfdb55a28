"""Every registered method, in each of its paper/reference modes (and efficient SAM), trains 2 steps
through `train/run.py` on the tiny preset, in one process and in two really synchronized CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator, debug_launcher
from accelerate.state import AcceleratorState
from safetensors.torch import load_file
from test_train_data import make_toy_manifest

from fairforge.train.run import load_config, train

#: name -> `--set` overrides of the tiny preset (ddfg on the tiny backbone, 64 px)
CASES: dict[str, tuple[str, ...]] = {
    "erm": ("method=erm", "optimizer.name=adam"),
    "ddfg": (),
    "dag_fdd": ("method=dag_fdd", "optimizer.name=sgd"),
    "dag_fdd_reference": ("method=dag_fdd", "optimizer.name=sgd", "dag_fdd.fair_loss=reference"),
    "daw_fdd": ("method=daw_fdd", "optimizer.name=sgd", "scheduler.name=step", "scheduler.step_epochs=1"),
    "daw_fdd_reference": ("method=daw_fdd", "optimizer.name=sgd", "daw_fdd.fair_loss=reference"),
    "pg_fdd": ("method=pg_fdd", "pg_fdd.feat_dim=16"),
    "pg_fdd_reference": ("method=pg_fdd", "pg_fdd.feat_dim=16", "pg_fdd.fair_loss=reference"),
    "roga": ("method=roga", "optimizer.name=adam"),
    "roga_own_domain": ("method=roga", "optimizer.name=adam", "roga.reals=own_domain"),
    "sam_every2": ("optimizer.every=2",),
    "looksam_every2": ("optimizer.every=2", "optimizer.reuse=looksam"),
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toy_manifest(tmp_path_factory.mktemp("toy"), n=16, size=32, val=8)


def _run(toy: Path, out: Path, case: str) -> Path:
    cfg = load_config(
        "tiny",
        [f"data.train=[{toy}]", f"output_dir={out}", "max_steps=2", "epochs=1", "data.batch_size=4", *CASES[case]],
    )
    train(cfg)
    return out / "final" / "model.safetensors"


def _check_weights(path: Path) -> None:
    weights = load_file(str(path))
    assert weights and all(torch.isfinite(t).all() for t in weights.values())


def test_every_registered_method_has_a_case() -> None:
    from fairforge.train.methods import METHODS

    assert {name for name in METHODS.names() if not name.startswith("toy")} <= {
        overrides[0].removeprefix("method=") if overrides else "ddfg" for overrides in CASES.values()
    }


@pytest.mark.parametrize("case", list(CASES))
def test_method_trains_two_steps_in_one_process(case: str, toy: Path, tmp_path: Path, tiny_cache) -> None:  # noqa: ANN001
    _check_weights(_run(toy, tmp_path / case, case))


def _ranks_agree(accelerator: Accelerator) -> dict[str, bool]:
    """The custom updates (RoGA's, efficient SAM's reuse steps) leave every process with the same weights,
    though each process sees different data (for RoGA even a different number of domains)."""
    from test_train_methods import TinyNet, _batch, _ctx, _sam_cfg

    from fairforge.config.train import TrainConfig
    from fairforge.train.methods import get_method
    from fairforge.train.updates.efficient_sam import efficient_sam_update

    rank = accelerator.process_index
    batch = _batch(seed=4 + rank)
    if rank == 0:
        batch = {k: v[batch["domain"] < 2] for k, v in batch.items()}
    agree = {}
    roga = TrainConfig(method="roga")
    roga.optimizer.name = "sgd"
    sam = _sam_cfg(every=2)
    look = _sam_cfg(every=2, reuse="looksam")
    for name, cfg in {"roga": roga, "sam_every2": sam, "looksam_every2": look}.items():
        ctx = _ctx(TinyNet(), cfg, update_rule=efficient_sam_update)
        for step in range(2):
            ctx.step = step
            if name == "roga":
                get_method("roga").training_step(ctx, batch)
            else:
                ctx.update(lambda ctx=ctx: ctx.unwrapped.losses(batch, ctx.model(batch)))
        flat = torch.cat([p.detach().flatten() for p in ctx.unwrapped.parameters()])
        both = accelerator.gather(flat[None])
        agree[name] = bool(torch.allclose(both[0], both[1], atol=1e-6))
    return agree


def _all_cases_in_this_process(toy: Path, out: Path) -> None:
    # A forked child inherits the parent's one-process Accelerate state: reset it to join the group.
    AcceleratorState._reset_state(reset_partial_state=True)
    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    for case in CASES:
        _run(toy, out / case, case)
    agree = _ranks_agree(accelerator)
    if accelerator.is_main_process:
        report = {"num_processes": accelerator.num_processes, "ranks_agree": agree}
        (out / "report.json").write_text(json.dumps(report))


@pytest.mark.slow
def test_every_method_trains_two_steps_on_two_processes(toy: Path, tmp_path: Path, tiny_cache) -> None:  # noqa: ANN001
    # debug_launcher forks; a parent that already ran multi-threaded torch ops (earlier tests in this
    # session) can leave the children deadlocked in OpenMP, so the launch happens in a fresh interpreter.
    quick = make_toy_manifest(tmp_path / "data", n=16, size=32)  # no validation rows: predict is tested above
    script = [sys.executable, __file__, str(quick), str(tmp_path)]
    subprocess.run(script, check=True, timeout=600, env={**os.environ, "FAIRFORGE_CACHE": str(tiny_cache)})
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["num_processes"] == 2
    assert report["ranks_agree"] == {"roga": True, "sam_every2": True, "looksam_every2": True}
    for case in CASES:
        _check_weights(tmp_path / case / "final" / "model.safetensors")


if __name__ == "__main__":
    debug_launcher(partial(_all_cases_in_this_process, Path(sys.argv[1]), Path(sys.argv[2])), num_processes=2)
