"""Each SBI deviation from the reference (SelfBlendedImages, Face X-ray masks) closed, pinned to its formula."""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
import pytest

from fairforge.config.generate import SBIConfig
from fairforge.generate.align import Aligner
from fairforge.generate.sbi import HULL_KINDS, blend_mask, hull_mask, random_affine, reference_scale, self_blend

LANDMARKS = Aligner(crop_size=256).landmarks


def reference_extended(landmarks: np.ndarray, shape) -> np.ndarray:
    """DeepfakeBench `DeepFakeMask.extended.build_mask`, written out."""
    mask = np.zeros(shape, dtype=np.float32)
    lm = landmarks.astype("int32").copy()
    ml_pnt = (lm[36] + lm[0]) // 2
    mr_pnt = (lm[16] + lm[45]) // 2
    ql_pnt = (lm[36] + ml_pnt) // 2
    qr_pnt = (lm[45] + mr_pnt) // 2
    bot_l = np.array((ql_pnt, lm[36], lm[37], lm[38], lm[39]))
    bot_r = np.array((lm[42], lm[43], lm[44], lm[45], qr_pnt))
    top_l, top_r = lm[17:22], lm[22:27]
    lm[17:22] = top_l + ((top_l - bot_l) // 2)
    lm[22:27] = top_r + ((top_r - bot_r) // 2)
    parts = [
        (lm[0:9], lm[17:18]),
        (lm[8:17], lm[26:27]),
        (lm[17:20], lm[8:9]),
        (lm[24:27], lm[8:9]),
        (lm[19:25], lm[8:9]),
        (lm[17:22], lm[27:28], lm[31:36], lm[8:9]),
        (lm[22:27], lm[27:28], lm[31:36], lm[8:9]),
        (lm[27:31], lm[31:36]),
    ]
    for item in parts:
        cv2.fillConvexPoly(mask, cv2.convexHull(np.concatenate(item)), 1.0)
    return mask


def test_extended_hull_is_face_xrays():
    ours = hull_mask((256, 256), LANDMARKS, "extended")
    assert np.array_equal(ours, reference_extended(LANDMARKS, (256, 256)).astype(np.uint8))
    assert ours.sum() > hull_mask((256, 256), LANDMARKS, "components").sum()  # the forehead is in


def test_hull_kinds_are_drawn_uniformly():
    image = np.full((64, 64, 3), 128, np.uint8)
    small = Aligner(crop_size=64).landmarks
    counts = Counter(self_blend(image, small, seed).params["hull"] for seed in range(400))
    assert set(counts) == set(HULL_KINDS)
    assert all(abs(n / 400 - 0.25) < 0.07 for n in counts.values())
    only = SBIConfig(hull_kinds=["facehull"])
    assert {self_blend(image, small, s, only).params["hull"] for s in range(20)} == {"facehull"}


class Draws:
    """Stands in for the generator so both sides get the same draws (size, kernels, sigma)."""

    def __init__(self, ints, kernels):
        self.ints, self.kernels = list(ints), list(kernels)

    def integers(self, lo, hi=None):
        return self.ints.pop(0)

    def choice(self, values):
        return self.kernels.pop(0)


def reference_blend_mask(mask, size_h, size_w, k1, k2, sigma):
    """SelfBlendedImages `blend.get_blend_mask`, written out with fixed draws (float mask in)."""
    h, w = mask.shape
    mask = cv2.resize(mask, (size_w, size_h))
    blurred = cv2.GaussianBlur(mask, (k1, k1), 0)
    blurred = blurred / (blurred.max())
    blurred[blurred < 1] = 0
    blurred = cv2.GaussianBlur(blurred, (k2, k2), sigma)
    blurred = blurred / (blurred.max())
    return cv2.resize(blurred, (w, h))


@pytest.mark.parametrize("k1", [5, 15, 25])
def test_blend_mask_is_the_references_float_mask_with_its_erosion(k1):
    hull = hull_mask((256, 256), LANDMARKS, "facehull")
    ours, params = blend_mask(hull, Draws([230, 210, 17], [k1, 11]))
    theirs = reference_blend_mask(hull.astype(np.float32), 230, 210, k1, 11, 17)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert params["kernels"] == [k1, 11]
    # the erosion: after binarizing, the region is smaller than the hull, more so for wider kernels
    resized = cv2.resize(hull.astype(np.float32), (210, 230))
    blurred = cv2.GaussianBlur(resized, (k1, k1), 0)
    kept = (blurred / blurred.max() >= 1).sum()
    assert kept < (resized > 0.5).sum()


def test_affine_scales_x_and_y_apart_and_elastic_border_reflects():
    mask = np.ones((64, 64), np.uint8)
    cfg = SBIConfig(translate_x=0.0, translate_y=0.0, scale=(1.0, 1.0))
    _, warped, _ = random_affine(np.zeros((64, 64, 3), np.uint8), mask, np.random.default_rng(0), cfg)
    assert warped.all()  # reflect-101 (albumentations' default): no zeros pulled in at the border
    scales = [
        random_affine(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), np.uint8), np.random.default_rng(s), SBIConfig())[
            2
        ]["scale"]
        for s in range(50)
    ]
    assert all(sx != sy for sx, sy in scales)
    same = SBIConfig(isotropic_scale=True)
    _, _, params = random_affine(
        np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), np.uint8), np.random.default_rng(1), same
    )
    assert params["scale"][0] == params["scale"][1]


def test_reference_scale_puts_the_face_at_the_references_size():
    """`crop_face(margin=True)`: the 68-point box plus w/2 each side, h above, 2h/5 below."""
    lm = LANDMARKS * 3 + 100  # a face in a larger frame, as the reference crops it
    x0, y0 = lm[:68, 0].min(), lm[:68, 1].min()
    x1, y1 = lm[:68, 0].max(), lm[:68, 1].max()
    w, h = x1 - x0, y1 - y0
    ref_w = (x1 + w / 8 * 4) - (x0 - w / 8 * 4)
    ref_h = (y1 + h / 5 * 2) - (y0 - h / 2 * 2)
    sx, sy = reference_scale(LANDMARKS, (256, 256))
    box = LANDMARKS.max(0) - LANDMARKS.min(0)
    for size in (192, 256):
        # face width in pixels of the working mask: ours (scaled) equals the reference's
        assert box[0] / 256 * size * sx == pytest.approx(w / ref_w * size, rel=1e-9)
        assert box[1] / 256 * size * sy == pytest.approx(h / ref_h * size, rel=1e-9)
