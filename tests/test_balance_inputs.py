"""Classifier inputs: ArcFace gets insightface's norm_crop from the stored landmarks, FairFace its dlib chip."""

from __future__ import annotations

import numpy as np

from fairforge.balance.backends import fairface_chip
from fairforge.balance.identity import arcface_input
from fairforge.balance.measure import ImageDataset
from fairforge.generate.align import Aligner, kps5_from_68, transform_points, umeyama


def test_arcface_input_puts_the_eyes_on_insightfaces_template_within_a_pixel():
    from insightface.utils import face_align

    aligner = Aligner(crop_size=256)
    landmarks = aligner.landmarks
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    ours = arcface_input(crop, landmarks, 112)
    # the very warp insightface applies (`norm_crop`) to the same keypoints
    kps = kps5_from_68(landmarks).astype(np.float32)
    assert np.abs(ours.astype(int) - face_align.norm_crop(crop, kps, 112).astype(int)).max() <= 1
    moved = transform_points(kps5_from_68(landmarks), umeyama(kps5_from_68(landmarks), face_align.arcface_dst))
    assert np.abs(moved[:2] - face_align.arcface_dst[:2]).max() < 1.0  # eyes
    assert np.linalg.norm(moved - face_align.arcface_dst, axis=1).mean() < 1.5  # all five, the face's own shape
    # the old input (the crop resized to 112) has the face 1/1.3 of the template's size: eyes ~4 px inward
    resized_eyes = kps5_from_68(landmarks)[:2] * (112 / 256)
    assert np.abs(resized_eyes[:, 0] - face_align.arcface_dst[:2, 0]).min() > 3


def test_fairface_chip_is_dlibs_face_chip_of_the_stored_landmarks():
    aligner = Aligner(crop_size=256)
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    chip = fairface_chip(crop, aligner.landmarks)
    assert chip.size == (300, 300)
    # the chip is a similarity of the crop: the face fills it as dlib's template (padding 0.25) does
    import dlib

    pts = aligner.landmarks
    rect = dlib.rectangle(int(pts[:, 0].min()), int(pts[:, 1].min()), int(pts[:, 0].max()), int(pts[:, 1].max()))
    shape = dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in pts])
    details = dlib.get_face_chip_details(shape, size=300, padding=0.25)
    assert details.rows == 300 and details.cols == 300
    assert np.array_equal(np.asarray(chip), np.asarray(dlib.extract_image_chip(crop, details)))


def test_the_measure_dataset_aligns_rows_with_landmarks(tmp_path):
    from PIL import Image

    aligner = Aligner(crop_size=128)
    rng = np.random.default_rng(2)
    crop = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    Image.fromarray(crop).save(tmp_path / "a.png")
    seen = []

    def transform(image):
        seen.append(image.size)
        import torch

        return torch.zeros(1)

    dataset = ImageDataset(
        [str(tmp_path / "a.png")] * 2,
        [transform],
        64,
        8,
        None,
        0,
        (112, 112),
        landmarks=[aligner.landmarks, None],
        aligns=[fairface_chip],
    )
    with_landmarks, without = dataset[0], dataset[1]
    assert seen == [(300, 300), (128, 128)]  # the chip when landmarks are stored, else the crop
    assert np.array_equal(with_landmarks["crop"].numpy(), arcface_input(crop, aligner.landmarks, 112))
    assert without["crop"].shape == (112, 112, 3)
