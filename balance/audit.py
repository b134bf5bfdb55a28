"""`fairforge audit`: measure what a detector could learn from a set besides the manipulation.

A detector trained on a set learns every difference between its real and fake images. The only
difference that should exist is inside the manipulated face; anything outside it (a global colour
or blur shift, a different crop, another file format) is a shortcut. The audit measures three things
on a manifest:

- **pairs**: for each fake and the real row its `dst_id` names, the fraction of pixels outside the
  face that differ by more than `change_level`, and their mean absolute difference. "Outside the
  face" is the partner's landmark hull dilated by `dilate` of the crop, or, when no landmarks are
  recorded, the top and side bands (`band` of the crop) where a face crop shows hair and background;
- **probes**: per fake method, a cross-validated scikit-learn classifier (standardized logistic
  regression, folds grouped by identity) separating the fakes from their partners using only
  features of what lies outside the face (per-channel mean and std, Laplacian variance and
  high-frequency energy) and of the file (format, JPEG quantization, width and height; not its byte
  count, which the manipulation inside the face changes too); its
  out-of-fold AUC with a bootstrap 95% interval. 0.5 means nothing outside the face tells them apart;
- **sources**: the same probe for the synthetic real rows against each imported real source (the
  bands only: imported rows carry no landmarks), plus each source's landmark geometry where rows
  carry landmarks, so a crop mismatch between synthetic and imported data is visible.

`DIR/audit.json` holds `probes.<method>.auc` / `.interval`, `pairs.<method>`, `sources`,
`geometry`, the thresholds and the list of exceeded ones; `--strict` exits 1 when that list is not
empty.
"""

from __future__ import annotations

import argparse
import io
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from fairforge.atomic import atomic_write_json
from fairforge.config.balance import AuditConfig

log = logging.getLogger(__name__)

AUDIT_NAME = "audit.json"
SYNTH_SOURCE = "fairforge-synth"
FEATURES = (
    "mean_r",
    "mean_g",
    "mean_b",
    "std_r",
    "std_g",
    "std_b",
    "log_laplacian_var",
    "log_hf_energy",
    "is_jpeg",
    "jpeg_quant",
    "width",
    "height",
)


# ------------------------------------------------------------------------------------------------
# regions and features
# ------------------------------------------------------------------------------------------------
def landmarks_array(value: Any) -> np.ndarray | None:
    """A manifest row's flat landmark list -> Nx2, or None when the row has none."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    pts = np.asarray(list(value), dtype=np.float64)
    return pts.reshape(-1, 2) if pts.size >= 6 else None


def outside_region(shape: tuple[int, int], landmarks: np.ndarray | None, cfg: AuditConfig) -> np.ndarray:
    """Boolean HxW: True where a pixel lies outside the face.

    With landmarks: outside their convex hull dilated by `cfg.dilate` of the crop side. Without:
    the top band and the two side bands, `cfg.band` of the crop each.
    """
    h, w = shape
    if landmarks is None:
        region = np.zeros((h, w), dtype=bool)
        bh, bw = max(int(round(cfg.band * h)), 1), max(int(round(cfg.band * w)), 1)
        region[:bh] = True
        region[:, :bw] = True
        region[:, w - bw :] = True
        return region
    hull = np.zeros((h, w), dtype=np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.rint(landmarks).astype(np.int32)), 1)
    radius = cfg.dilate * max(h, w)
    if radius <= 0:
        return hull == 0
    # distance to the hull (0 inside it): one linear pass, where a dilation costs the kernel's area
    distance = cv2.distanceTransform((1 - hull).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return distance > radius


@dataclass
class Loaded:
    """One image as the audit sees it: pixels and the facts of its file."""

    pixels: np.ndarray  # RGB uint8
    is_jpeg: bool
    jpeg_quant: float


def load(path: Path) -> Loaded:
    data = path.read_bytes()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    is_jpeg = data[:3] == b"\xff\xd8\xff"
    quant = 0.0
    if is_jpeg:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as handle:
            tables = getattr(handle, "quantization", None) or {}
            if tables:
                quant = float(np.mean(tables[min(tables)]))
    return Loaded(np.ascontiguousarray(image[:, :, ::-1]), is_jpeg, quant)


def region_features(image: Loaded, region: np.ndarray) -> np.ndarray:
    """The FEATURES of one image over `region` (the pixels outside the face); masked OpenCV reductions."""
    pixels = image.pixels
    mask = region.astype(np.uint8)
    if not mask.any():
        mask[:] = 1
    mean, std = cv2.meanStdDev(pixels, mask=mask)
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY).astype(np.float32)
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_32F), mask=mask)
    high = cv2.mean(cv2.absdiff(grey, cv2.GaussianBlur(grey, (0, 0), 1.5)), mask=mask)[0]
    h, w = pixels.shape[:2]
    return np.array(
        [
            *mean.ravel(),
            *std.ravel(),
            np.log1p(float(lap_std.ravel()[0]) ** 2),
            np.log1p(float(high)),
            float(image.is_jpeg),
            image.jpeg_quant,
            float(w),
            float(h),
        ]
    )


# ------------------------------------------------------------------------------------------------
# probes
# ------------------------------------------------------------------------------------------------
def auc_score(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank sum (ties get half credit): `roc_auc_score` without its overhead."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    positive = y == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def probe_auc(
    positive: np.ndarray,
    negative: np.ndarray,
    groups: np.ndarray | None,
    cfg: AuditConfig,
) -> dict[str, Any]:
    """Out-of-fold AUC (with a bootstrap 95% interval) of a classifier telling the two sets apart."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([positive, negative])
    y = np.r_[np.ones(len(positive), int), np.zeros(len(negative), int)]
    folds = min(cfg.folds, len(positive), len(negative))
    if folds < 2:
        return {"auc": None, "interval": None, "n_fake": len(positive), "n_real": len(negative), "note": "too few"}
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    if groups is not None and len(set(groups)) >= folds:
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=cfg.seed)
        scores = cross_val_predict(model, x, y, cv=splitter, groups=groups, method="predict_proba")[:, 1]
    else:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=cfg.seed)
        scores = cross_val_predict(model, x, y, cv=splitter, method="predict_proba")[:, 1]
    auc = auc_score(y, scores)
    rng = np.random.default_rng(cfg.seed)
    draws = []
    for _ in range(cfg.bootstrap):
        pick = rng.integers(0, len(y), len(y))
        if 0 < y[pick].sum() < len(pick):
            draws.append(auc_score(y[pick], scores[pick]))
    interval = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if draws else None
    return {"auc": auc, "interval": interval, "n_fake": int(len(positive)), "n_real": int(len(negative))}


# ------------------------------------------------------------------------------------------------
# the audit
# ------------------------------------------------------------------------------------------------
def _sample(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    return frame if limit == 0 or len(frame) <= limit else frame.sample(limit, random_state=seed)


def _geometry(frame: pd.DataFrame) -> dict[str, Any]:
    """Per source: mean eye line and landmark box width as fractions of the image (68-point rows)."""
    out: dict[str, Any] = {}
    for source, rows in frame.groupby("source", sort=True):
        eyes, widths = [], []
        for value, width, height in zip(rows.get("landmarks", []), rows["width"], rows["height"]):
            pts = landmarks_array(value)
            if pts is None or len(pts) < 68 or not width or not height:
                continue
            eyes.append(pts[36:48, 1].mean() / float(height))
            widths.append((pts[:, 0].max() - pts[:, 0].min()) / float(width))
        out[str(source)] = (
            {"rows": len(eyes), "eye_line": float(np.mean(eyes)), "box_width": float(np.mean(widths))}
            if eyes
            else {"rows": 0, "note": "no landmarks recorded"}
        )
    return out


class Auditor:
    """Reads each image once and keeps its features per region kind (landmark hull or bands)."""

    def __init__(self, frame: pd.DataFrame, root: Path, cfg: AuditConfig) -> None:
        self.records = {r["id"]: r for r in frame.to_dict("records")}
        self.root = root
        self.cfg = cfg
        self._images: dict[str, Loaded] = {}
        self.images_read = 0

    def image(self, id_: str) -> Loaded:
        if id_ not in self._images:
            self._images[id_] = load(self.root / str(self.records[id_]["path"]))
            self.images_read += 1
        return self._images[id_]

    def forget(self) -> None:
        self._images.clear()

    def region(self, id_: str, landmarks_from: str | None) -> np.ndarray:
        pixels = self.image(id_).pixels
        pts = None if landmarks_from is None else landmarks_array(self.records[landmarks_from].get("landmarks"))
        return outside_region(pixels.shape[:2], pts, self.cfg)

    def pairs(self, fakes: pd.DataFrame) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
        """Pair statistics of the fakes of one method, and the probe's features of fakes and partners."""
        changed, diffs, fx, rx, groups = [], [], [], [], []
        missing = 0
        for fake in fakes.itertuples(index=False):
            partner = fake.dst_id
            if not isinstance(partner, str) or partner not in self.records:
                missing += 1
                continue
            a, b = self.image(fake.id), self.image(partner)
            if a.pixels.shape != b.pixels.shape:
                changed.append(1.0)
                diffs.append(float("nan"))
                continue
            region = self.region(partner, partner)
            delta = cv2.absdiff(a.pixels, b.pixels).max(axis=2)
            n = int(region.sum())
            changed.append(float(((delta > self.cfg.change_level) & region).sum()) / n if n else 0.0)
            diffs.append(float(cv2.mean(delta, mask=region.astype(np.uint8))[0]) if n else 0.0)
            fx.append(region_features(a, region))
            rx.append(region_features(b, region))
            identity = getattr(fake, "identity", None)
            groups.append(str(identity) if isinstance(identity, str) else partner)
        stats = {
            "fakes": int(len(fakes)),
            "paired": int(len(changed)),
            "missing_partner": int(missing),
            "changed_fraction": float(np.mean(changed)) if changed else None,
            "mean_abs_diff": float(np.nanmean(diffs)) if diffs and not np.all(np.isnan(diffs)) else None,
        }
        groups_arr = np.r_[groups, groups] if groups else np.array([])
        return stats, np.array(fx), np.array(rx), groups_arr

    def band_features(self, ids: Iterable[str]) -> np.ndarray:
        out = []
        for id_ in ids:
            out.append(region_features(self.image(id_), self.region(id_, None)))
            self._images.pop(id_, None)
        return np.array(out)


def run_audit(frame: pd.DataFrame, root: str | Path, cfg: AuditConfig | None = None) -> dict[str, Any]:
    """The audit of one manifest (rows of `frame`, paths relative to `root`)."""
    cfg = cfg or AuditConfig()
    root = Path(root)
    auditor = Auditor(frame, root, cfg)
    result: dict[str, Any] = {"pairs": {}, "probes": {}, "sources": {}}
    fakes = frame[frame["label"] == 1]
    for method, rows in fakes.groupby("method", sort=True):
        rows = _sample(rows, cfg.max_per_probe, cfg.seed)
        stats, fx, rx, groups = auditor.pairs(rows)
        result["pairs"][str(method)] = stats
        result["probes"][str(method)] = (
            probe_auc(fx, rx, groups, cfg) if len(fx) else {"auc": None, "interval": None, "note": "no pairs"}
        )
        auditor.forget()
    real = frame[frame["label"] == 0]
    synth = real[real["source"] == SYNTH_SOURCE]
    imported = real[real["source"] != SYNTH_SOURCE]
    if len(synth) and len(imported):
        synth_x = auditor.band_features(_sample(synth, cfg.max_per_probe, cfg.seed)["id"])
        for source, rows in imported.groupby("source", sort=True):
            other = auditor.band_features(_sample(rows, cfg.max_per_probe, cfg.seed)["id"])
            result["sources"][str(source)] = probe_auc(synth_x, other, None, cfg)
    result["geometry"] = _geometry(frame)
    result["thresholds"] = {"max_auc": cfg.max_auc, "max_changed_fraction": cfg.max_changed_fraction}
    result["exceeded"] = exceeded(result, cfg)
    result["images_read"] = auditor.images_read
    return result


def exceeded(result: Mapping[str, Any], cfg: AuditConfig) -> list[str]:
    """Every measurement over its threshold, as `probes.<method>.auc = 0.93 > 0.6`."""
    out = []
    for kind in ("probes", "sources"):
        for name, probe in result[kind].items():
            if probe.get("auc") is not None and probe["auc"] > cfg.max_auc:
                out.append(f"{kind}.{name}.auc = {probe['auc']:.3f} > {cfg.max_auc}")
    for name, stats in result["pairs"].items():
        value = stats.get("changed_fraction")
        if value is not None and value > cfg.max_changed_fraction:
            out.append(f"pairs.{name}.changed_fraction = {value:.4f} > {cfg.max_changed_fraction}")
        if stats.get("missing_partner"):
            out.append(f"pairs.{name}.missing_partner = {stats['missing_partner']} (dst_id not in the manifest)")
    return out


def audit_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """One row per fake method and per imported source: the audit's figures for a report or card."""

    def fmt_interval(probe: Mapping[str, Any]) -> str:
        interval = probe.get("interval")
        return "" if not interval else f"{interval[0]:.2f}-{interval[1]:.2f}"

    rows = []
    for method, probe in result["probes"].items():
        pair = result["pairs"].get(method, {})
        rows.append(
            {
                "probe": f"{method} vs partners",
                "AUC": None if probe.get("auc") is None else round(probe["auc"], 3),
                "95% interval": fmt_interval(probe),
                "pairs": pair.get("paired"),
                "changed outside face": None
                if pair.get("changed_fraction") is None
                else round(pair["changed_fraction"], 4),
                "mean abs diff": None if pair.get("mean_abs_diff") is None else round(pair["mean_abs_diff"], 3),
            }
        )
    for source, probe in result["sources"].items():
        rows.append(
            {
                "probe": f"synthetic real vs {source}",
                "AUC": None if probe.get("auc") is None else round(probe["auc"], 3),
                "95% interval": fmt_interval(probe),
                "pairs": None,
                "changed outside face": None,
                "mean abs diff": None,
            }
        )
    return pd.DataFrame(
        rows, columns=["probe", "AUC", "95% interval", "pairs", "changed outside face", "mean abs diff"]
    )


def geometry_table(result: Mapping[str, Any]) -> pd.DataFrame:
    rows = [
        {
            "source": s,
            "rows with landmarks": g["rows"],
            "eye line / height": g.get("eye_line"),
            "landmark box / width": g.get("box_width"),
        }
        for s, g in result.get("geometry", {}).items()
    ]
    return pd.DataFrame(rows, columns=["source", "rows with landmarks", "eye line / height", "landmark box / width"])


def write_audit(
    frame: pd.DataFrame, root: str | Path, out: str | Path, cfg: AuditConfig | None = None
) -> dict[str, Any]:
    """Run the audit and write `out/audit.json`; returns the result."""
    result = run_audit(frame, root, cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / AUDIT_NAME, result)
    return result


def audit_balanced(manifest: pd.DataFrame, out_dir: str | Path, cfg: AuditConfig) -> dict[str, Any] | None:
    """The audit `fairforge balance` runs on its final manifest (None when disabled).

    With `cfg.strict` an exceeded threshold is an error, raised after audit.json is written.
    """
    from fairforge.errors import FairforgeError

    if not cfg.enabled:
        return None
    result = write_audit(manifest, out_dir, out_dir, cfg)
    if cfg.strict and result["exceeded"]:
        raise FairforgeError(
            f"balance.audit.strict: {'; '.join(result['exceeded'])} (see {Path(out_dir) / AUDIT_NAME})"
        )
    return result


# ------------------------------------------------------------------------------------------------
# the command line
# ------------------------------------------------------------------------------------------------
def _audit(args: argparse.Namespace) -> int:
    from fairforge.config import load_stage_config
    from fairforge.manifest import read_manifest

    config = load_stage_config(args.config, args.preset, args.overrides)
    cfg = config.balance.audit
    frame = read_manifest(args.manifest, config.taxonomy.build(), check_files=True)
    result = write_audit(frame, frame.attrs["root"], args.out, cfg)
    print(audit_table(result).to_string(index=False))
    for line in result["exceeded"]:
        print(f"exceeded: {line}")
    return 1 if (args.strict or cfg.strict) and result["exceeded"] else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="measure label shortcuts of a set: pairs, probes, sources (DIR/audit.json)",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--manifest", required=True, help="the manifest (file or folder) to audit")
    parser.add_argument("--out", required=True, help="folder for audit.json")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a threshold is exceeded")
    parser.add_argument("--config", help="pipelines.yaml (thresholds under balance.audit; default: built-in)")
    parser.add_argument("--preset", help="a preset of the config file: tiny or full")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config value"
    )
    parser.set_defaults(func=_audit)
