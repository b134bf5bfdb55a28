"""bench/gpu.py --smoke: the GPU benchmark's code end to end at tiny sizes on a CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_benchmark_smoke_runs_every_part_and_writes_one_json(tmp_path, tiny_cache):
    out = tmp_path / "bench.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FAIRFORGE_CACHE": str(tiny_cache)}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu.py"), "--smoke", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| part | contender | setting | images/s | vs bare | MFU | TFLOP/s | peak GiB |" in done.stdout
    result = json.loads(out.read_text())
    assert result["smoke"] is True
    rows = {(r["part"], r["contender"]): r for r in result["rows"]}
    diffusion = ["bare diffusers", "fairforge", "fairforge channels_last"]
    train = [f"{who} {what}" for what in ("ERM", "SAM", "SAM every 5") for who in ("bare", "fairforge")]
    assert {("diffusion", c) for c in diffusion} | {("train", c) for c in train} <= set(rows)
    assert ("loader", "DataLoader") in rows and ("evaluate", "fairness_report") in rows
    for key in [("diffusion", c) for c in diffusion] + [("train", c) for c in train]:
        assert rows[key]["images_per_s"] > 0 and rows[key]["vs_bare"] > 0
    # measured FLOPs: SAM is two forward/backward passes, SAM every 5 is 6 passes per 5 steps
    erm = rows["train", "bare ERM"]["flops_per_step"]
    assert erm > 0
    assert rows["train", "bare SAM"]["flops_per_step"] == pytest.approx(2 * erm, rel=1e-6)
    assert rows["train", "bare SAM every 5"]["flops_per_step"] == pytest.approx(1.2 * erm, rel=1e-6)
    assert rows["train", "fairforge SAM"]["flops_per_step"] == pytest.approx(2 * erm, rel=0.01)
    assert rows["train", "fairforge SAM every 5"]["flops_per_step"] == pytest.approx(1.2 * erm, rel=0.01)
    assert rows["loader", "DataLoader"]["vs_erm_step"] > 0
    assert rows["evaluate", "fairness_report"]["seconds"] > 0
