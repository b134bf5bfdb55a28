"""Face embeddings for the same-identity filter, through insightface's own model loader.

`insightface.model_zoo.get_model(path)` recognises an ArcFace-style ONNX (one square input of
112 px, a 512-d output) and applies insightface's own preprocessing; buffalo_l's `w600k_r50.onnx`
and the tiny `arcface` model load the same way. The crops fairforge makes are already aligned,
so each image is only resized to the model's input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fairforge.errors import ConfigError

from .models import resolve_model


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
