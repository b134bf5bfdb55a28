"""Every filter rejects a planted bad image, with its reason, in DIR/rejected.parquet."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from test_balance_lib import blurred, config, face_like, fairface_state, row, write_set, zoomed

from fairforge.balance.backends import load_classifier
from fairforge.balance.dedup import near_duplicates
from fairforge.balance.filters import same_identity
from fairforge.balance.run import run_balance
from fairforge.config.balance import ClassifierConfig
from fairforge.taxonomy import DEFAULT_TAXONOMY


def crafted_fairface(path: Path, images: list[np.ndarray], ambiguous: np.ndarray) -> None:
    """A FairFace-format classifier sure of male/Asian/20-29 on `images`, unsure (p=.5) on `ambiguous`.

    The gender logit is linear in the penultimate features along the direction from `ambiguous`
    to the others, so the confidence depends on the image like a real classifier's does.
    """
    state = fairface_state(race={"East Asian": 5.0}, gender={"Male": 0.0, "Female": 0.0}, age={"20-29": 5.0})
    torch.save(state, path)
    clf = load_classifier(ClassifierConfig(path=str(path), arch="resnet18"), "c", DEFAULT_TAXONOMY)
    fc = clf.model.fc
    clf.model.fc = torch.nn.Identity()
    with torch.no_grad():
        feats = clf.model(torch.stack([clf.transform(Image.fromarray(a)) for a in images]))
        amb = clf.model(clf.transform(Image.fromarray(ambiguous))[None])[0]
    direction = feats.mean(0) - amb
    margins = (feats - amb) @ direction
    assert (margins > 0).all()
    w = direction * (4.0 / margins.min())
    state["fc.weight"][7] = w  # Male logit = w . (phi - phi(ambiguous)); Female logit = 0
    state["fc.bias"][7] = -(w @ amb)
    del fc
    torch.save(state, path)


def test_every_filter_rejects_its_planted_image(tmp_path, tiny_cache):
    goods = {f"good{i}": face_like(i + 1) for i in range(4)}
    png = io.BytesIO()
    Image.fromarray(goods["good0"]).save(png, format="PNG")
    noisy = np.clip(goods["good1"].astype(int) + np.random.default_rng(5).integers(-3, 4, goods["good1"].shape), 0, 255)
    planted = {
        "unreadable": b"this is not an image",
        "mismatch": face_like(10),
        "lowconf": (face_like(11) * 0.15 + 108).astype(np.uint8),
        "noface": face_like(12),
        "lowface": face_like(13),
        "small": face_like(14, size=24),
        "blurry": blurred(face_like(15)),
        "exactdup": png.getvalue(),
        "neardup": noisy.astype(np.uint8),
        "sameid": zoomed(goods["good2"]),
        "sbi": face_like(16),
    }
    rows = [row(k) for k in goods] + [
        row("unreadable"),
        row("mismatch", gender="female"),
        row("lowconf"),
        row("noface", face_score=None),
        row("lowface", face_score=0.2),
        row("small"),
        row("blurry"),
        row("exactdup"),
        row("neardup"),
        row("sameid"),
        row("sbi", method="sbi", label=1, src_id="good3", dst_id="good3"),
    ]
    gen = tmp_path / "gen"
    write_set(gen, rows, {**goods, **planted})
    arrays = [v for k, v in {**goods, **planted}.items() if isinstance(v, np.ndarray) and k != "lowconf"]
    crafted_fairface(tmp_path / "ff.pt", arrays, planted["lowconf"])
    cfg = config(
        classifiers=[{"path": str(tmp_path / "ff.pt"), "arch": "resnet18"}],
        verify={"match": ["gender", "race", "age"], "tau": {"gender": 0.8}},
        face={"detector": "manifest", "min_score": 0.5},
        identity={"model": "tiny:arcface", "threshold": 0.9},
        target_per_cell=3,
        method_mix={"diffusion": 1.0},
        cells=["male-Asian-20-29", "female-Asian-20-29"],
        mix={"real_ratio": None},
    )
    result = run_balance(cfg, gen, tmp_path / "out", progress=False)

    rejected = pd.read_parquet(tmp_path / "out" / "rejected.parquet")
    reasons = dict(zip(rejected["id"], rejected["reason"]))
    assert reasons == {
        "unreadable": "unreadable",
        "mismatch": "attribute_mismatch",
        "lowconf": "low_confidence",
        "noface": "no_face",
        "lowface": "low_face_score",
        "small": "too_small",
        "blurry": "too_blurry",
        "exactdup": "exact_duplicate",
        "neardup": "near_duplicate",
        "sameid": "same_identity",
        "sbi": "not_targeted",
        "good3": "surplus",
    }
    detail = dict(zip(rejected["id"], rejected["detail"]))
    assert detail["mismatch"].startswith("gender: predicted male") and "intended female" in detail["mismatch"]
    assert detail["exactdup"] == "same bytes as good0" and detail["sameid"].endswith("with good2")
    assert sorted(result.manifest["id"]) == ["good0", "good1", "good2"]
    assert result.deficits.to_dict("records") == [
        {"gender": "female", "race": "Asian", "age": "20-29", "method": "diffusion", "split": None, "missing": 3}
    ]
    acc = result.acceptance.set_index(["gender", "age", "method"])
    cell = acc.loc[("male", "20-29", "diffusion")]
    assert (cell["made"], cell["after_attribute"], cell["passed"], cell["kept"]) == (13, 11, 4, 3)
    out = tmp_path / "out"
    for name in (
        "manifest.parquet",
        "deficits.parquet",
        "acceptance.parquet",
        "report.md",
        "report.html",
        "report/acceptance.png",
    ):
        assert (out / name).is_file(), name
    assert "Counts before and after each filter" in (out / "report.md").read_text()


def test_dlib_detector_finds_the_face_not_the_noise(tmp_path):
    from skimage import data

    face = np.asarray(Image.fromarray(data.astronaut()[0:220, 140:330]).resize((128, 128)))
    rows = [row("astronaut", face_score=None), row("noise", face_score=None)]
    write_set(tmp_path / "gen", rows, {"astronaut": face, "noise": face_like(3, 128)})
    cfg = config(
        classifiers=[],
        face={"detector": "dlib", "min_score": 0.0},
        target_per_cell=1,
        method_mix={"diffusion": 1},
        num_workers=2,  # the detector is built lazily inside each DataLoader worker
    )
    result = run_balance(cfg, tmp_path / "gen", tmp_path / "out", progress=False)
    assert list(result.manifest["id"]) == ["astronaut"]
    assert result.manifest["face_score"].iloc[0] > 0
    assert result.rejected.set_index("id").loc["noise", "reason"] == "no_face"


def test_near_duplicate_search_matches_brute_force():
    rng = np.random.default_rng(0)
    values = [int(v) for v in rng.integers(0, 2**63, 500)]
    values += [values[7] ^ 0b1011, values[9] ^ (1 << 60)]  # 3 and 1 bits from earlier hashes
    hashes = [f"{v:016x}" for v in values]
    found = near_duplicates(hashes, 4)
    kept, brute = [], []
    for i, v in enumerate(values):
        best = min((((v ^ values[k]).bit_count(), k) for k in kept), default=(99, -1))
        (brute.append((i, best[1], best[0])) if best[0] <= 4 else kept.append(i))
    assert found == brute and (500, 7, 3) in found and (501, 9, 1) in found


def test_same_identity_is_greedy_in_row_order():
    emb = np.array([[1, 0], [0.99, 0.141], [0, 1], [0.7, 0.714]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    hits = same_identity(emb, 0.9, block=2)
    assert [(r, k) for r, k, _ in hits] == [(1, 0)]
