"""Face embeddings for the same-identity filter, through insightface's own model loader.

`insightface.model_zoo.get_model(path)` recognises an ArcFace-style ONNX (one square input of
112 px, a 512-d output) and applies insightface's own preprocessing; buffalo_l's `w600k_r50.onnx`
and the tiny `arcface` model load the same way. ArcFace was trained on insightface's `norm_crop`
(its 5 keypoints on a fixed 112-px template), and its cosine threshold only means something on
that input: `arcface_input` aligns each crop from its stored landmarks the same way. A row without
landmarks falls back to resizing the whole crop (its threshold is then only a rough guide).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fairforge.errors import ConfigError

from .models import resolve_model


def arcface_input(rgb: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """insightface's `norm_crop` of an RGB image from its 68 landmarks (eye centres, nose, mouth corners)."""
    from insightface.utils import face_align

    from fairforge.generate.align import kps5_from_68, umeyama

    kps = kps5_from_68(np.asarray(landmarks, np.float64).reshape(-1, 2))
    if size % 112 == 0:
        dst = face_align.arcface_dst * (size / 112.0)
    else:  # insightface's 128-px layout: the 112 template scaled, moved 8 px right
        ratio = size / 128.0
        dst = face_align.arcface_dst * ratio + np.array([8.0 * ratio, 0.0])
    # the same least-squares similarity insightface estimates (`estimate_norm`), without its deprecated call
    matrix = umeyama(kps, dst)
    return cv2.warpAffine(rgb, matrix, (size, size), borderValue=0.0)


class FaceEmbedder:
    """L2-normalized embeddings of aligned RGB face crops."""

    def __init__(self, model_path: str, providers: Sequence[str], key: str = "balance.identity.model") -> None:
        from insightface.model_zoo import get_model

        path = resolve_model(
            model_path, key, hint="point it at an insightface recognition ONNX (buffalo_l/w600k_r50.onnx)"
        )
        model = get_model(path, providers=list(providers))
        if model is None or not hasattr(model, "get_feat"):
            raise ConfigError(f"{key}: {path} is not a face recognition model insightface recognises")
        self.model = model
        self.path = path
        self.input_size = tuple(model.input_size)

    def embed(self, crops_rgb: np.ndarray) -> np.ndarray:
        """[n, h, w, 3] uint8 RGB crops at `input_size` -> [n, d] unit vectors (float32)."""
        bgr = [np.ascontiguousarray(c[:, :, ::-1]) for c in crops_rgb]
        feats = np.asarray(self.model.get_feat(bgr), dtype=np.float32).reshape(len(bgr), -1)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return feats / np.maximum(norms, 1e-12)
