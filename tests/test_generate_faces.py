"""Detectors, alignment and the SBI recipe on a real photo (scikit-image's astronaut) and synthetic masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fairforge.config.generate import DetectorConfig, SBIConfig
from fairforge.errors import MissingModelError
from fairforge.generate.align import Aligner, kps5_from_68, umeyama
from fairforge.generate.faces import build_detector
from fairforge.generate.sbi import HULL_KINDS, PART_HULLS, extended_landmarks, hull_mask, self_blend


@pytest.fixture(scope="module")
def astronaut_face():
    """dlib (dlib-bin + face-recognition-models' 68-point predictor), offline, on a real photo."""
    from skimage import data

    image = data.astronaut()
    aligner = Aligner(crop_size=128)
    detector = build_detector(DetectorConfig(backend="dlib"), aligner)
    face = detector.best(image)
    return image, aligner, face


def test_dlib_finds_the_astronaut_and_68_landmarks(astronaut_face):
    image, _, face = astronaut_face
    assert face is not None and face.score > 0.5
    assert face.landmarks.shape == (68, 2)
    x0, y0, x1, y1 = face.bbox
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200  # her face, not the flag or the helmet
    inside = (face.landmarks[:, 0] > x0 - 20) & (face.landmarks[:, 0] < x1 + 20) & (face.landmarks[:, 1] < y1 + 30)
    assert inside.all()


def test_alignment_puts_the_keypoints_on_the_canonical_layout(astronaut_face):
    image, aligner, face = astronaut_face
    crop, landmarks = aligner.align(image, face.kps, face.landmarks)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    # the 5 keypoints land near the canonical ones (a similarity cannot fit 5 points exactly)
    assert np.abs(kps5_from_68(landmarks) - aligner.kps).max() < 128 * 0.05
    # the template backend reports exactly the canonical landmarks of an aligned crop
    template = build_detector(DetectorConfig(backend="template"), aligner).best(crop)
    np.testing.assert_allclose(template.landmarks, aligner.landmarks)
    # an aligned crop aligned again is the same crop: same geometry for every method
    again, _ = aligner.align(crop, template.kps)
    assert np.array_equal(again, crop)


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([4.0, -9.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = umeyama(src, src @ rot.T + shift)
    np.testing.assert_allclose(matrix, np.hstack([rot, shift[:, None]]), atol=1e-9)


def test_sbi_runs_on_the_astronaut(astronaut_face):
    image, aligner, face = astronaut_face
    crop, landmarks = aligner.align(image, face.kps, face.landmarks)
    result = self_blend(crop, landmarks, seed=7)
    assert result.image.shape == crop.shape and result.image.dtype == np.uint8
    assert not np.array_equal(result.image, crop)
    again = self_blend(crop, landmarks, seed=7)
    assert np.array_equal(again.image, result.image)  # seeded: the same fake from the same seed
    assert not np.array_equal(self_blend(crop, landmarks, seed=8).image, result.image)


def _hull(points: np.ndarray, shape) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(out, cv2.convexHull(np.asarray(points).astype(np.int32)), 1)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_sbi_mask_inside_the_hull_and_blend_ratio_applied(seed):
    aligner = Aligner(crop_size=96)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    landmarks = aligner.landmarks
    cfg = SBIConfig()
    result = self_blend(image, landmarks, seed, cfg)
    kind = result.params["hull"]
    assert kind in HULL_KINDS
    # the hull mask never leaves the hull of its points (`extended` raises the eyebrows first)
    full = _hull(extended_landmarks(landmarks) if kind == "extended" else landmarks, (96, 96))
    assert result.hull.any() and not (result.hull & (1 - full)).any()
    # the final mask: peak equals the drawn blend ratio, zero far outside the hull (warp + blur margin)
    ratio = result.params["blend_ratio"]
    assert ratio in cfg.blend_ratios
    assert result.mask.max() == pytest.approx(ratio, abs=1e-6)
    far = cv2.dilate(full, np.ones((31, 31), np.uint8)) == 0
    assert np.all(result.mask[far] < 1e-3)
    # blended = mask * source + (1 - mask) * target, truncated to uint8 as the paper's code does
    weight = result.mask[:, :, None]
    expected = (weight * result.source + (1 - weight) * result.target).astype(np.uint8)
    assert np.array_equal(result.image, expected)
    # outside the mask the fake is the target exactly; the colour/quality change went to one side only
    assert np.array_equal(result.image[result.mask == 0], result.target[result.mask == 0])
    assert result.params["transformed"] in ("source", "target")


def test_sbi_part_hulls_are_unions_of_landmark_subsets():
    aligner = Aligner(crop_size=128)
    full = hull_mask((128, 128), aligner.landmarks, "facehull")
    for kind in PART_HULLS:
        part = hull_mask((128, 128), aligner.landmarks, kind)
        assert part.any() and not (part & (1 - full)).any()


def test_missing_predictor_and_pack_are_clear_errors(tmp_path):
    aligner = Aligner()
    cfg = DetectorConfig(backend="dlib", dlib={"predictor": str(tmp_path / "none.dat")})
    with pytest.raises(MissingModelError, match=r"detector\.dlib\.predictor"):
        build_detector(cfg, aligner)
    cfg = DetectorConfig(backend="insightface", insightface={"root": str(tmp_path)})
    with pytest.raises(MissingModelError, match="never downloads"):
        build_detector(cfg, aligner)
