"""`fairforge balance` from the command line: config overrides, clean errors that name the key."""

from __future__ import annotations

import pandas as pd
from test_balance_lib import make_set

from fairforge.cli import main


def test_balance_cli_with_overrides(tmp_path, tiny_cache, capsys):
    make_set(tmp_path / "gen", {("male", "White", "40-49"): 3}, {"diffusion": 0})
    args = ["balance", "--in", str(tmp_path / "gen"), "--out", str(tmp_path / "out"), "--no-progress"]
    sets = [
        "balance.classifiers=[{path: 'tiny:fairface', arch: resnet18, image_size: 64}]",
        "balance.verify.match=[]",
        "balance.target_per_cell=2",
        "balance.method_mix={diffusion: 1}",
        "balance.cells=[male-White-40-49, female-White-40-49]",
        "balance.num_workers=0",
    ]
    assert main(args + [x for s in sets for x in ("--set", s)]) == 0
    out = capsys.readouterr().out
    assert "balance: 2 rows" in out and "2 images still missing" in out
    assert pd.read_parquet(tmp_path / "out" / "deficits.parquet")["missing"].tolist() == [2]


def test_balance_cli_errors_name_the_config_key(tmp_path, capsys):
    make_set(tmp_path / "gen", {("male", "White", "40-49"): 1}, {"diffusion": 0})
    args = ["balance", "--in", str(tmp_path / "gen"), "--out", str(tmp_path / "out")]
    assert main(args) == 2  # the default FairFace checkpoint is the user's to supply
    assert "balance.classifiers[0].path: no model configured; download it from" in capsys.readouterr().err
    assert main(args + ["--set", "balance.classifiers=[]"]) == 2
    assert "balance.verify.match: no classifier predicts ['gender', 'race', 'age']" in capsys.readouterr().err
    assert main(args + ["--set", "balance.split.train=0.5"]) == 2
    assert "balance.split: Value error, train + validation + test must be 1" in capsys.readouterr().err
