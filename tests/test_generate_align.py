"""The default crop is DeepfakeBench's: the same 5 points, the same template, the same warp."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import SimilarityTransform

from fairforge.config.generate import AlignConfig, DetectorConfig
from fairforge.generate.align import DEEPFAKEBENCH_POINTS, MEAN_FACE_68, Aligner, transform_points
from fairforge.generate.faces import build_detector


def deepfakebench_matrix(landmarks68: np.ndarray, res: int) -> np.ndarray:
    """DeepfakeBench `preprocess.py::img_align_crop` written out from its formula (scale 1.3)."""
    dst = np.array([[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366], [33.5493, 92.3655], [62.7299, 92.2041]])
    dst[:, 0] += 8.0
    dst *= res / 112
    margin = res * 0.3 / 2
    dst = (dst + margin) * (res / (res + 2 * margin))
    tform = SimilarityTransform.from_estimate(landmarks68[[37, 44, 30, 49, 55]], dst)
    return tform.params[:2]


def random_faces(n: int, seed: int = 0) -> list[np.ndarray]:
    """Mean faces in random poses, sizes and positions of a 1024-px frame, with landmark noise."""
    rng = np.random.default_rng(seed)
    faces = []
    for _ in range(n):
        angle, scale = rng.uniform(-0.4, 0.4), rng.uniform(150, 500)
        rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        pts = MEAN_FACE_68 @ rot.T + rng.uniform(200, 600, 2) + rng.normal(0, 2, (68, 2))
        faces.append(pts)
    return faces


def test_default_geometry_is_deepfakebench():
    assert AlignConfig().geometry == "deepfakebench"
    assert Aligner.from_config(AlignConfig()).geometry == "deepfakebench"


@pytest.mark.parametrize("res", [256, 380])
def test_crop_matrix_is_deepfakebench_within_a_pixel(res):
    aligner = Aligner(crop_size=res)
    for pts in random_faces(20):
        ours = aligner.matrix(pts[[36, 42, 30, 48, 54]], pts)
        theirs = deepfakebench_matrix(pts, res)
        corners = np.array([[0, 0], [res, 0], [0, res], [res, res], [res / 2, res / 2]], float)
        back_ours = transform_points(corners, np.linalg.inv(np.vstack([ours, [0, 0, 1]]))[:2])
        back_theirs = transform_points(corners, np.linalg.inv(np.vstack([theirs, [0, 0, 1]]))[:2])
        # the crop window in the frame, ours vs theirs, in crop pixels
        scale = np.sqrt(abs(np.linalg.det(theirs[:, :2])))
        assert np.abs(back_ours - back_theirs).max() * scale < 1e-3


def test_landmark_statistics_equal_the_template_at_256():
    """Over many faces, the crop's 68 landmarks average where DeepfakeBench's crop puts them, within 1 px.

    (A similarity cannot put 5 points of a real face exactly on the template; the residual is the
    same in both crops, so the statistics are compared, not the template alone.)
    """
    aligner = Aligner(crop_size=256)
    ours, theirs = [], []
    for pts in random_faces(200, seed=1):
        _, landmarks = aligner.align(np.zeros((8, 8, 3), np.uint8), pts[[36, 42, 30, 48, 54]], pts)
        ours.append(landmarks)
        theirs.append(transform_points(pts, deepfakebench_matrix(pts, 256)))
    assert np.abs(np.mean(ours, axis=0) - np.mean(theirs, axis=0)).max() < 1.0
    assert np.abs(np.std(ours, axis=0) - np.std(theirs, axis=0)).max() < 1.0
    # the template detector's landmarks (the mean face placed by the geometry) are that crop too
    placed = aligner.landmarks
    np.testing.assert_allclose(
        placed, transform_points(MEAN_FACE_68, deepfakebench_matrix(MEAN_FACE_68, 256)), atol=1.0
    )
    assert np.abs(placed[list(DEEPFAKEBENCH_POINTS)] - aligner.template).max() < 12  # the fit's residual
    # the measured figures: eye line near 0.47 of the height, centred
    assert abs(aligner.template[:2, 1].mean() / 256 - 0.47) < 0.01
    assert abs(aligner.template[:, 0].mean() / 256 - 0.5) < 0.02


def test_crop_pixels_match_deepfakebench_warp():
    import cv2

    rng = np.random.default_rng(3)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8), (0, 0), 3)
    pts = random_faces(1, seed=4)[0]
    aligner = Aligner(crop_size=256)
    ours, _ = aligner.align(frame, pts[[36, 42, 30, 48, 54]], pts)
    theirs = cv2.warpAffine(frame, deepfakebench_matrix(pts, 256), (256, 256))
    inner = (slice(16, 240), slice(16, 240))
    assert np.abs(ours[inner].astype(int) - theirs[inner].astype(int)).mean() < 2.0


def test_template_detector_and_mean_face_geometry():
    aligner = Aligner(crop_size=256)
    crop = np.zeros((256, 256, 3), np.uint8)
    face = build_detector(DetectorConfig(backend="template"), aligner).best(crop)
    np.testing.assert_allclose(face.landmarks, aligner.landmarks)
    # an aligned crop aligns onto itself: the matrix is the identity
    np.testing.assert_allclose(aligner.matrix(face.kps, face.landmarks), np.eye(3)[:2], atol=1e-9)
    tight = Aligner(crop_size=256, geometry="mean_face")
    box = tight.landmarks.max(0) - tight.landmarks.min(0)
    assert abs(box[0] / 256 - 0.7) < 1e-9
    with pytest.raises(ValueError, match="geometry"):
        Aligner(geometry="square")
