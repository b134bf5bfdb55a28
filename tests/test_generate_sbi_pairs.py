"""An SBI fake equals its real partner exactly outside the (dilated) hull, in both transform branches."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fairforge.config.generate import SBIConfig
from fairforge.generate.align import Aligner
from fairforge.generate.sbi import hull_mask, self_blend, target_is_transformed


def textured_face(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return cv2.GaussianBlur(image, (0, 0), 2)


def outside(landmarks: np.ndarray, size: int, grow: float = 0.12) -> np.ndarray:
    """Pixels outside the full landmark hull dilated by `grow` of the crop (the warp and blur reach)."""
    hull = hull_mask((size, size), landmarks, "facehull")
    radius = int(round(grow * size))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(hull, kernel) == 0


@pytest.mark.parametrize("branch", ["target", "source"])
def test_fake_equals_its_partner_outside_the_hull(branch):
    size = 256
    aligner = Aligner(crop_size=size)
    seeds = [s for s in range(40) if target_is_transformed(s) == (branch == "target")][:8]
    assert len(seeds) == 8
    for seed in seeds:
        image = textured_face(size, seed)
        result = self_blend(image, aligner.landmarks, seed, SBIConfig())
        assert result.params["transformed"] == branch
        # the partner: the transformed target (its own real row) or the pristine image itself
        partner = result.target if branch == "target" else image
        if branch == "source":
            assert np.array_equal(result.target, image)
        else:
            assert not np.array_equal(result.target, image)  # a colour/quality change the fake shares
        region = outside(aligner.landmarks, size)
        assert region.mean() > 0.3
        assert np.array_equal(result.image[region], partner[region]), seed
        # and the fake does differ from its partner inside the face
        assert np.abs(result.image.astype(int) - partner.astype(int))[~region].mean() > 0.5


def test_the_branch_is_known_from_the_seed_alone():
    aligner = Aligner(crop_size=64)
    image = textured_face(64, 0)
    for seed in range(30):
        result = self_blend(image, aligner.landmarks, seed)
        assert (result.params["transformed"] == "target") == target_is_transformed(seed)
