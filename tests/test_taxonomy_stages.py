"""The configured taxonomy reaches every stage: train and evaluate carry it, the pipeline passes it.

A fifth race (Indian, split off FairFace's `Others`) is the case that used to fail: validation and
evaluate silently used the default four races and rejected the rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairforge.config import load_pipeline_config
from fairforge.config.evaluate import EvaluateConfig
from fairforge.config.taxonomy import TaxonomyConfig
from fairforge.errors import ConfigError, ManifestError
from fairforge.evaluate.run import evaluate_files
from fairforge.pipeline.stage import StageContext
from fairforge.pipeline.stages import plan_evaluate, plan_predict
from fairforge.taxonomy import DEFAULT_TAXONOMY, FAIRFACE_TO_RACE

REPO = Path(__file__).resolve().parents[1]
RACES = ["Asian", "White", "Black", "Indian", "Others"]
FIVE_RACES = [
    "taxonomy.races=[Asian, White, Black, Indian, Others]",
    "taxonomy.race_map={"
    + ", ".join(f"'{k}': {'Indian' if k == 'Indian' else v}" for k, v in FAIRFACE_TO_RACE.items())
    + "}",
]


def five_race_taxonomy() -> TaxonomyConfig:
    return TaxonomyConfig(races=RACES, race_map={**FAIRFACE_TO_RACE, "Indian": "Indian"})


def predictions(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "label": rng.integers(0, 2, n).astype("int8"),
            "gender": rng.choice(["male", "female"], n),
            "race": rng.choice(RACES, n),
        }
    )
    frame["score"] = np.clip(rng.normal(0.5 + 0.2 * (2 * frame["label"] - 1), 0.2), 0, 1)
    frame["source"] = "synth"
    return frame


def test_pipeline_copies_its_taxonomy_into_train_and_evaluate():
    cfg = load_pipeline_config(REPO / "pipelines.yaml", "tiny", FIVE_RACES)
    assert cfg.taxonomy.races == RACES
    assert cfg.train.taxonomy == cfg.taxonomy == cfg.evaluate.taxonomy
    assert cfg.train.taxonomy.build().groups[3] == "male-Indian"


def test_a_section_with_another_taxonomy_is_refused():
    with pytest.raises(ConfigError, match="train.taxonomy differs from the top-level taxonomy"):
        load_pipeline_config(
            REPO / "pipelines.yaml",
            "tiny",
            [*FIVE_RACES, "train.taxonomy.races=[Asian, White]", "train.taxonomy.race_map={White: White}"],
        )


def test_evaluate_reports_the_groups_of_its_taxonomy(tmp_path: Path):
    path = tmp_path / "synth.parquet"
    predictions().to_parquet(path)
    report = evaluate_files([path], tmp_path / "out", EvaluateConfig(taxonomy=five_race_taxonomy(), plots=False))
    assert list(report["groups"]["intersectional"])[:5] == [f"male-{race}" for race in RACES]
    assert report["groups"]["race"]["Indian"]["auc"] is not None
    # the default taxonomy has no Indian race: the same file is refused, naming the column
    with pytest.raises(ManifestError, match="race"):
        evaluate_files([path], tmp_path / "out2", EvaluateConfig(plots=False))


def test_validation_metrics_use_the_training_taxonomy():
    from fairforge.train.validate import validation_metrics

    frame = predictions()
    taxonomy = five_race_taxonomy().build()
    flat, reports = validation_metrics(frame, taxonomy)
    assert flat["val/auc"] is not None and flat["val/F_FPR"] is not None
    with pytest.raises(ManifestError, match="race"):
        validation_metrics(frame, DEFAULT_TAXONOMY)


def test_data_info_has_a_group_per_cell_of_the_taxonomy():
    from fairforge.train.data import data_info

    frame = predictions().assign(method="real", source="synth", domain="")
    info = data_info(frame, five_race_taxonomy().build())
    assert info.num_groups == 10 and sum(info.group_counts) == len(frame)


def test_predict_and_evaluate_stages_take_the_pipeline_taxonomy(tmp_path: Path):
    default = load_pipeline_config(REPO / "pipelines.yaml", "tiny")
    five = load_pipeline_config(REPO / "pipelines.yaml", "tiny", FIVE_RACES)
    plans = {}
    for name, cfg, overrides in (("default", default, []), ("five", five, FIVE_RACES)):
        ctx = StageContext(REPO / "pipelines.yaml", "tiny", overrides, cfg, tmp_path)
        plans[name] = (plan_predict(ctx), plan_evaluate(ctx))
    for _, evaluate in plans.values():
        assert "--config" in evaluate.commands[0] and "--preset" in evaluate.commands[0]
    # a changed taxonomy changes both fingerprints, so a rerun rescores and re-evaluates
    assert plans["default"][0].config != plans["five"][0].config
    assert plans["default"][1].config != plans["five"][1].config
    evaluate_command = plans["five"][1].commands[0]
    assert all(item in evaluate_command for item in FIVE_RACES)


def test_import_maps_labels_onto_the_configured_taxonomy(tmp_path: Path):
    from PIL import Image

    from fairforge.cli import main
    from fairforge.manifest import read_manifest

    folder = tmp_path / "faces"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(folder / name)
    (folder / "metadata.csv").write_text(
        "file_name,label,gender,race\na.png,0,Male,Indian\nb.png,1,Female,Latino_Hispanic\n"
    )
    config = tmp_path / "p.yaml"
    config.write_text("taxonomy: {}\n")
    argv = ["import", "imagefolder", "--root", str(folder), "--config", str(config)]
    assert main([*argv, "--out", str(tmp_path / "four")]) == 0
    assert read_manifest(tmp_path / "four")["race"].tolist() == ["Others", "Others"]
    sets = [item for override in FIVE_RACES for item in ("--set", override)]
    assert main([*argv, *sets, "--out", str(tmp_path / "five")]) == 0
    five = read_manifest(tmp_path / "five", taxonomy=five_race_taxonomy().build())
    assert five["race"].tolist() == ["Indian", "Others"]
