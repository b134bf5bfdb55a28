"""Per-image quality measures: sharpness, perceptual hash, face detector score.

Each is a plain function of one decoded image, so the DataLoader workers compute them beside the
classifier's preprocessing (one decode per image) and the filters only compare numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import imagehash
import numpy as np
from PIL import Image

from fairforge.registry import Registry

FaceScorer = Callable[[np.ndarray], float | None]
FACE_DETECTORS: Registry[Callable[[int], FaceScorer]] = Registry("face detector")


def sharpness(rgb: np.ndarray, size: int) -> float:
    """Variance of the Laplacian of the grey image resized to `size` x `size` (blurry -> small)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def perceptual_hash(image: Image.Image, hash_size: int) -> str:
    """imagehash's DCT perceptual hash as hex (hash_size**2 bits)."""
    return str(imagehash.phash(image, hash_size=hash_size))


def register_face_detector(name: str) -> Callable[[Callable[[int], FaceScorer]], Callable[[int], FaceScorer]]:
    """`@register_face_detector("name")`: a factory (upsample) -> scorer for `balance.face.detector`."""
    return FACE_DETECTORS.register(name)


@register_face_detector("dlib")
def dlib_scorer(upsample: int = 1) -> FaceScorer:
    """dlib's HOG frontal face detector: the best detection's SVM margin, None when no face.

    dlib ships in the `dlib-bin` wheel with its detector built in, so this works offline.
    """
    import dlib

    detector = dlib.get_frontal_face_detector()

    def score(rgb: np.ndarray) -> float | None:
        _, scores, _ = detector.run(np.ascontiguousarray(rgb), upsample, 0.0)
        return float(max(scores)) if len(scores) else None

    return score
