"""The audit catches planted label shortcuts and passes a clean set (`fairforge audit`)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fairforge.balance.audit import audit_table, outside_region, run_audit
from fairforge.cli import main
from fairforge.config.balance import AuditConfig
from fairforge.generate.align import Aligner
from fairforge.manifest import to_frame, write_manifest

SIZE = 64
ALIGNER = Aligner(crop_size=SIZE)
LANDMARKS = [float(v) for v in ALIGNER.landmarks.ravel()]
CFG = AuditConfig(bootstrap=50)


def face(rng: np.random.Generator) -> np.ndarray:
    """A textured crop with its own colour and sharpness, as real photos vary."""
    base = rng.normal(0, 1, (SIZE, SIZE, 3))
    image = cv2.GaussianBlur(base, (0, 0), float(rng.uniform(0.6, 1.6))) * rng.uniform(25, 45)
    image += rng.normal(128, 10, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def inside_only(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A fake that differs from its pristine only inside the face hull (a clean manipulation)."""
    hull = ~outside_region((SIZE, SIZE), ALIGNER.landmarks, AuditConfig(dilate=0.0))
    fake = image.copy()
    fake[hull] = np.clip(fake[hull].astype(int) + rng.integers(-40, 40, 3), 0, 255).astype(np.uint8)
    return fake


def make_set(tmp_path, shortcut: str | None, n: int = 80, seed: int = 0):
    rng = np.random.default_rng(seed)
    (tmp_path / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        real = face(rng)
        fake = inside_only(real, rng)
        if shortcut == "blur":
            fake = cv2.GaussianBlur(fake, (0, 0), 1.2)
        elif shortcut == "colour":
            fake = np.clip(fake.astype(int) + [18, -12, 10], 0, 255).astype(np.uint8)
        for kind, image, label in (("r", real, 0), ("f", fake, 1)):
            path = f"images/{kind}{i}.png"
            cv2.imwrite(str(tmp_path / path), image[:, :, ::-1])
            rows.append(
                {
                    "id": f"{kind}{i}",
                    "path": path,
                    "label": label,
                    "method": "sbi" if label else "diffusion",
                    "source": "fairforge-synth",
                    "domain": "sbi" if label else "diffusion",
                    "gender": "male",
                    "race": "Asian",
                    "age": "20-29",
                    "identity": f"r{i}",
                    "dst_id": f"r{i}" if label else None,
                    "src_id": f"r{i}" if label else None,
                    "width": SIZE,
                    "height": SIZE,
                    "landmarks": LANDMARKS,
                }
            )
    return to_frame(rows)


@pytest.mark.parametrize("shortcut", ["blur", "colour"])
def test_planted_shortcuts_are_caught(tmp_path, shortcut):
    frame = make_set(tmp_path, shortcut)
    result = run_audit(frame, tmp_path, CFG)
    probe = result["probes"]["sbi"]
    assert probe["auc"] > 0.9 and probe["interval"][0] > 0.8
    assert result["pairs"]["sbi"]["changed_fraction"] > 0.1  # far above the 0.01 threshold
    assert any(line.startswith("probes.sbi.auc") for line in result["exceeded"])


def test_a_clean_set_passes(tmp_path):
    frame = make_set(tmp_path, None)
    result = run_audit(frame, tmp_path, CFG)
    probe = result["probes"]["sbi"]
    assert abs(probe["auc"] - 0.5) < 0.1
    assert result["pairs"]["sbi"] == {
        "fakes": 80,
        "paired": 80,
        "missing_partner": 0,
        "changed_fraction": 0.0,
        "mean_abs_diff": 0.0,
    }
    assert result["exceeded"] == []
    table = audit_table(result)
    assert table["probe"].tolist() == ["sbi vs partners"]


def test_an_imported_source_with_another_crop_is_flagged(tmp_path):
    frame = make_set(tmp_path, None, n=60)
    rng = np.random.default_rng(5)
    extra = []
    for i in range(60):  # "imported" real frames: a wider crop, upscaled: softer bands, no landmarks
        image = cv2.resize(face(rng)[8:56, 8:56], (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        path = f"images/x{i}.jpg"
        cv2.imwrite(str(tmp_path / path), image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
        extra.append(
            {
                **frame.iloc[0].to_dict(),
                "id": f"x{i}",
                "path": path,
                "source": "ffpp",
                "label": 0,
                "method": "real",
                "dst_id": None,
                "src_id": None,
                "identity": f"x{i}",
                "landmarks": None,
            }
        )
    frame = to_frame([*frame.to_dict("records"), *extra])
    result = run_audit(frame, tmp_path, CFG)
    assert result["sources"]["ffpp"]["auc"] > 0.9
    assert result["geometry"]["ffpp"]["rows"] == 0
    assert abs(result["geometry"]["fairforge-synth"]["eye_line"] - 0.47) < 0.03


def test_missing_partner_is_reported(tmp_path):
    frame = make_set(tmp_path, None, n=10)
    frame = frame[frame["id"] != "r3"]
    result = run_audit(frame, tmp_path, CFG)
    assert result["pairs"]["sbi"]["missing_partner"] == 1
    assert any("missing_partner" in line for line in result["exceeded"])


def test_cli_writes_audit_json_and_strict_fails(tmp_path, capsys):
    for name, shortcut, code in (("clean", None, 0), ("blurred", "blur", 1)):
        folder = tmp_path / name
        frame = make_set(folder, shortcut, n=40)
        write_manifest(frame, folder / "manifest.parquet")
        out = tmp_path / f"audit-{name}"
        assert main(["audit", "--manifest", str(folder), "--out", str(out), "--strict"]) == code
        result = json.loads((out / "audit.json").read_text())
        assert set(result) >= {"probes", "pairs", "sources", "exceeded", "thresholds"}
        assert "auc" in result["probes"]["sbi"] and len(result["probes"]["sbi"]["interval"]) == 2
    # without --strict the shortcut is reported, not fatal
    assert main(["audit", "--manifest", str(tmp_path / "blurred"), "--out", str(tmp_path / "again")]) == 0
    assert "exceeded: probes.sbi.auc" in capsys.readouterr().out


def test_kept_fakes_bring_their_partners():
    import pandas as pd

    from fairforge.balance.verify import with_partners

    rows = pd.DataFrame(
        {
            "id": ["p0", "t0", "f0", "f1", "t1", "p1"],
            "label": [0, 0, 1, 1, 0, 0],
            "dst_id": [None, None, "t0", "p1", None, None],
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    kept = with_partners(rows, pd.Index([10, 12]))  # f0 kept, its transformed target t0 was capped away
    assert list(kept) == [10, 12, 11]
    assert list(with_partners(rows, pd.Index([13, 15]))) == [13, 15]  # partner already kept: nothing added
