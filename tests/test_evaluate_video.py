"""Video level: the mean frame score per video, scored like frames; inconsistent videos are named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fairforge.errors import ManifestError
from fairforge.evaluate import fairness_report
from fairforge.taxonomy import DEFAULT_TAXONOMY


def frames(n_videos: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    per_video = rng.integers(1, 9, n_videos)
    video = np.repeat([f"v{i}" for i in range(n_videos)], per_video)
    label = np.repeat(rng.integers(0, 2, n_videos), per_video)
    gender = np.repeat(rng.choice(DEFAULT_TAXONOMY.genders, n_videos), per_video)
    race = np.repeat(rng.choice(DEFAULT_TAXONOMY.races, n_videos), per_video)
    score = np.clip(rng.normal(0.5 + 0.1 * (2 * label - 1), 0.25), 0, 1)
    order = rng.permutation(video.size)  # frames of a video need not be adjacent
    return pd.DataFrame({"video": video, "label": label, "gender": gender, "race": race, "score": score}).iloc[order]


def test_video_auc_equals_sklearn_on_mean_frame_scores():
    df = frames()
    r = fairness_report(df["label"], df["score"], df["gender"], df["race"], videos=df["video"])
    per_video = df.groupby("video").agg(label=("label", "first"), score=("score", "mean"), race=("race", "first"))
    assert r["video"]["n"] == len(per_video) == 300
    assert r["video"]["overall"]["auc"] == pytest.approx(
        roc_auc_score(per_video["label"], per_video["score"]), abs=1e-12
    )
    black = per_video[per_video["race"] == "Black"]
    assert r["video"]["groups"]["race"]["Black"]["auc"] == pytest.approx(roc_auc_score(black["label"], black["score"]))
    assert set(r["video"]) >= {"overall", "groups", "fairness", "left_out"}
    assert r["video"]["overall"]["auc"] != r["overall"]["auc"]  # frame level is a different number
    assert set(r.to_frame()["scope"]) == {"threshold", "at_eer", "video"}


def test_frames_without_a_video_are_counted_and_left_out_of_the_video_level():
    df = frames(50)
    videos = df["video"].to_numpy(dtype=object, copy=True)
    videos[:5] = None
    r = fairness_report(df["label"], df["score"], df["gender"], df["race"], videos=videos)
    assert r["video"]["rows_without_video"] == 5


@pytest.mark.parametrize(("column", "words"), [("label", "different label"), ("race", "different gender and race")])
def test_a_video_whose_label_or_group_varies_is_a_named_error(column, words):
    df = frames(40).reset_index(drop=True)
    rows = np.flatnonzero(df["video"] == "v3")
    if rows.size < 2:
        rows = np.flatnonzero(df["video"] == df["video"].value_counts().index[0])
    name = df.loc[rows[0], "video"]
    if column == "label":
        df.loc[rows[-1], "label"] = 1 - df.loc[rows[-1], "label"]
    else:
        df.loc[rows[-1], "race"] = "White" if df.loc[rows[-1], "race"] != "White" else "Asian"
    with pytest.raises(ManifestError) as error:
        fairness_report(df["label"], df["score"], df["gender"], df["race"], videos=df["video"])
    assert f"video {name!r}" in str(error.value) and words in str(error.value) and error.value.column == "video"
