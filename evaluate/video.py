"""Video-level predictions: one row per video, scored by the mean of its frame scores.

DeepfakeBench reports video AUC beside frame AUC this way. A video is one clip of one person, so
its frames must share a label and a demographic cell; a video that does not is a wrong input (a
reused id, a mislabelled frame) and is named rather than averaged into a number. Videos are
per source: the same id in two datasets is two videos.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairforge.errors import ManifestError

from .groups import Cells
from .inputs import Predictions


def video_predictions(preds: Predictions) -> tuple[Predictions, int]:
    """(one row per video with its mean frame score, number of frames without a video id)."""
    if preds.video is None:
        raise ValueError("predictions carry no video column")
    has = np.flatnonzero(pd.notna(preds.video))
    frames = preds.subset(has)
    key = pd.Series(frames.video).astype(str)
    codes, uniques = pd.factorize(frames.source_codes.astype(np.int64).astype(str) + "\x00" + key.to_numpy())
    n_videos = len(uniques)
    counts = np.bincount(codes, minlength=n_videos)
    first = np.full(n_videos, frames.labels.size, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(codes.size))
    for name, values in (("label", frames.labels), ("gender and race", frames.cells.code)):
        differs = np.flatnonzero(values != values[first][codes])
        if differs.size:
            row = int(has[differs[0]])
            raise ManifestError(
                preds.file,
                f"video {str(preds.video[row])!r} mixes frames of different {name}; a video has one",
                row=row,
                column="video",
            )
    scores = np.bincount(codes, weights=frames.scores, minlength=n_videos) / counts
    cells = Cells(code=frames.cells.code[first], cell_names=preds.cells.cell_names, groupings=preds.cells.groupings)
    videos = Predictions(
        frames.labels[first],
        np.clip(scores, 0.0, 1.0),
        cells,
        frames.source_codes[first],
        preds.source_names,
        preds.file,
        key.to_numpy()[first],
    )
    return videos, int(len(preds) - has.size)
