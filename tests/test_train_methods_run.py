"""Every published method (and efficient SAM) trains 2 steps through `train/run.py` on the tiny preset,
in one process and in two really synchronized CPU processes."""

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
from fairforge.train.run import load_config, train
from safetensors.torch import load_file
from test_train_data import make_toy_manifest

#: name -> `--set` overrides of the tiny preset (ddfg on the tiny backbone, 64 px)
CASES: dict[str, tuple[str, ...]] = {
    "dag_fdd": ("method=dag_fdd", "optimizer.name=sgd"),
    "daw_fdd": ("method=daw_fdd", "optimizer.name=sgd"),
    "pg_fdd": ("method=pg_fdd", "pg_fdd.feat_dim=16"),
    "roga": ("method=roga", "optimizer.name=adam"),
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


@pytest.mark.parametrize("case", list(CASES))
def test_method_trains_two_steps_in_one_process(case: str, toy: Path, tmp_path: Path, tiny_cache) -> None:  # noqa: ANN001
    _check_weights(_run(toy, tmp_path / case, case))


def _all_cases_in_this_process(toy: Path, out: Path) -> None:
    # A forked child inherits the parent's one-process Accelerate state: reset it to join the group.
    AcceleratorState._reset_state(reset_partial_state=True)
    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    for case in CASES:
        _run(toy, out / case, case)
    if accelerator.is_main_process:
        (out / "report.json").write_text(json.dumps({"num_processes": accelerator.num_processes}))


@pytest.mark.slow
def test_every_method_trains_two_steps_on_two_processes(toy: Path, tmp_path: Path, tiny_cache) -> None:  # noqa: ANN001
    # debug_launcher forks; a parent that already ran multi-threaded torch ops (earlier tests in this
    # session) can leave the children deadlocked in OpenMP, so the launch happens in a fresh interpreter.
    quick = make_toy_manifest(tmp_path / "data", n=16, size=32)  # no validation rows: predict is tested above
    script = [sys.executable, __file__, str(quick), str(tmp_path)]
    subprocess.run(script, check=True, timeout=600, env={**os.environ, "FAIRFORGE_CACHE": str(tiny_cache)})
    assert json.loads((tmp_path / "report.json").read_text())["num_processes"] == 2
    for case in CASES:
        _check_weights(tmp_path / case / "final" / "model.safetensors")


if __name__ == "__main__":
    debug_launcher(partial(_all_cases_in_this_process, Path(sys.argv[1]), Path(sys.argv[2])), num_processes=2)
