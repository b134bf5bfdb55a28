"""A swap changes nothing outside the face: full-resolution swap, hull paste-back, the pristine crop matrix."""

from __future__ import annotations

import cv2
import numpy as np

from fairforge.config.generate import GenerateConfig
from fairforge.generate.align import MEAN_FACE_68, Aligner, transform_points, umeyama
from fairforge.generate.swap import Swapper, face_region, paste_back


def full_image(size: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured 'photo' and the 68 landmarks of a face in it (the mean face, rotated and placed)."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (0, 0), 2)
    angle, scale = 0.15, size * 0.35
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = (MEAN_FACE_68 - 0.5) @ rot.T + size / 2
    return image, landmarks


def outside_dilated(landmarks: np.ndarray, size: int, grow: float = 0.03) -> np.ndarray:
    hull = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.rint(landmarks).astype(np.int32)), 1)
    r = max(int(grow * size), 1)
    return cv2.dilate(hull, np.ones((2 * r + 1, 2 * r + 1), np.uint8)) == 0


def test_paste_back_leaves_everything_outside_the_hull_alone():
    image, landmarks = full_image()
    kps = np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[30], landmarks[48], landmarks[54]])
    arcface = np.array([[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [41.55, 92.37], [70.73, 92.20]]) * (128 / 112)
    matrix = umeyama(kps, arcface)
    face = np.full((128, 128, 3), 255, np.uint8)  # a swapper output as different as can be
    out = paste_back(image, face, matrix, landmarks)
    hull = face_region(image.shape[:2], landmarks)
    assert np.array_equal(out[hull == 0], image[hull == 0])
    core = hull > 0.999
    assert (out[core] == 255).mean() > 0.9 and core.mean() > 0.03


def test_a_swap_changes_nothing_outside_the_face(tiny_cache):
    """With the tiny inswapper (inswapper's graph signature), through the code the job runs."""
    cfg = GenerateConfig()
    swapper = Swapper(cfg)
    image, landmarks = full_image()
    aligner = Aligner(crop_size=256)
    kps = np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[30], landmarks[48], landmarks[54]])
    matrix = aligner.matrix(kps, landmarks)
    pristine = aligner.warp(image, matrix)
    crop_landmarks = transform_points(landmarks, matrix)
    donor, donor_landmarks = full_image(seed=1)
    embedding = swapper.embedding(aligner.warp(donor, matrix), crop_landmarks)
    fake = aligner.warp(swapper.swap(image, landmarks, embedding), matrix)
    region = outside_dilated(crop_landmarks, 256)
    diff = np.abs(fake.astype(int) - pristine.astype(int))
    assert region.mean() > 0.3
    assert diff[region].max() == 0  # PNG: exactly; JPEG adds only its own noise
    assert diff[~region].mean() > 1.0  # the face itself did change
    # the replaced part of the crop is the face, not ~87% of it as a swap on the crop would be
    changed = diff.max(axis=2) > 0
    assert changed.mean() < 0.5
