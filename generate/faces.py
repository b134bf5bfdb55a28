"""Face detection and landmarks behind one interface, with a registry of backends.

- `insightface`: the buffalo_l pack (SCRFD boxes + 5 keypoints, 68-point 3D landmarks), read from
  `root/models/name` and never downloaded; the pack's files are sha256-checked when the config
  pins them; `tiny:insightface` is a tiny pack with the same files and signatures.
- `dlib`: the field's standard DLib preprocessing (PG-FDD, SBI, DeepfakeBench crop with it): the
  HOG frontal detector of `dlib-bin` and the 68-point predictor shipped in `face-recognition-models`,
  so real landmarks work offline.
- `template`: the image is already an aligned crop; its landmarks are the canonical ones. The tiny
  preset uses it: a random-weight generator draws no faces a real detector could find.

Every backend returns `Face`s in image pixel coordinates of an RGB uint8 image, largest first.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fairforge.config.generate import DetectorConfig
from fairforge.errors import MissingModelError
from fairforge.registry import Registry

from .align import MEAN_FACE_68, Aligner, kps5_from_68
from .models import check_sha256, resolve_pretrained


@dataclass
class Face:
    """One detected face: box, 5 keypoints, 68 landmarks (None when the backend has none), score."""

    bbox: np.ndarray
    kps: np.ndarray
    landmarks: np.ndarray | None
    score: float | None

    @property
    def area(self) -> float:
        return float(max(self.bbox[2] - self.bbox[0], 0) * max(self.bbox[3] - self.bbox[1], 0))


class Detector(ABC):
    """Base class: `detect(rgb) -> [Face]`, largest first; `name` goes into the provenance."""

    name = "detector"
    has_landmarks = True

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Face]: ...

    def best(self, image: np.ndarray, min_score: float = 0.0) -> Face | None:
        """The largest face scoring at least `min_score` (deepfake crops take the main face)."""
        for face in self.detect(image):
            if face.score is None or face.score >= min_score:
                return face
        return None


DetectorFactory = Callable[[DetectorConfig, Aligner, "list[str] | None"], Detector]

#: backend name -> Detector class, called as `cls(cfg, aligner, providers)`.
DETECTORS: Registry[DetectorFactory] = Registry("face detector")


def register_detector(name: str) -> Callable[[type[Detector]], type[Detector]]:
    """Class decorator: the backend `name` of `generate.detector.backend`."""
    return DETECTORS.register(name)  # type: ignore[return-value]


def build_detector(cfg: DetectorConfig, aligner: Aligner, providers: list[str] | None = None) -> Detector:
    """The configured backend; `aligner` gives the canonical layout the `template` backend reports.

    `providers` overrides the onnxruntime providers of a backend that has them (insightface);
    by default each backend uses its own section's (`generate.detector.insightface.providers`).
    """
    factory = DETECTORS.get(cfg.backend, key="generate.detector.backend")
    return factory(cfg, aligner, providers)


def _sorted(faces: list[Face]) -> list[Face]:
    return sorted(faces, key=lambda f: -f.area)


@register_detector("template")
class TemplateDetector(Detector):
    """The aligner's mean-face landmarks scaled to the image: for images that are aligned crops."""

    name = "template"

    def __init__(self, cfg: DetectorConfig, aligner: Aligner, providers: list[str] | None = None) -> None:
        self._unit = aligner.landmarks / aligner.crop_size

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        landmarks = self._unit * np.array([w, h], dtype=np.float64)
        box = np.concatenate([landmarks.min(0), landmarks.max(0)])
        return [Face(bbox=box, kps=kps5_from_68(landmarks), landmarks=landmarks, score=None)]


def _face_recognition_models_file(name: str) -> Path:
    """A file of the `face-recognition-models` package, found without importing it.

    Its `__init__` imports `pkg_resources`, which recent setuptools no longer ship.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(
            "generate.detector.dlib.predictor: the `face-recognition-models` package is not installed "
            "(pip install face-recognition-models), or name a 68-point .dat file"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models" / name


@register_detector("dlib")
class DlibDetector(Detector):
    """dlib HOG frontal detector + 68-point shape predictor."""

    name = "dlib"

    def __init__(self, cfg: DetectorConfig, aligner: Aligner, providers: list[str] | None = None) -> None:
        import dlib

        path = (
            Path(cfg.dlib.predictor)
            if cfg.dlib.predictor
            else _face_recognition_models_file("shape_predictor_68_face_landmarks.dat")
        )
        if not path.is_file():
            raise MissingModelError(f"generate.detector.dlib.predictor: {str(path)!r} not found")
        self.upsample = cfg.dlib.upsample
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))
        self._dlib = dlib

    def detect(self, image: np.ndarray) -> list[Face]:
        rgb = np.ascontiguousarray(image)
        rects, scores, _ = self._detector.run(rgb, self.upsample, 0.0)
        faces = []
        for rect, score in zip(rects, scores):
            shape = self._predictor(rgb, rect)
            landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float64)
            faces.append(Face(bbox=box, kps=kps5_from_68(landmarks), landmarks=landmarks, score=float(score)))
        return _sorted(faces)


def insightface_pack(cfg: DetectorConfig) -> Path:
    """The pack folder, checked: present (never downloaded) and matching the pinned sha256s."""
    root = Path(os.path.expanduser(resolve_pretrained(cfg.insightface.root)))
    pack = root / "models" / cfg.insightface.name
    if not pack.is_dir() or not any(pack.glob("*.onnx")):
        raise MissingModelError(
            f"generate.detector.insightface: model pack {str(pack)!r} not found or empty; put the "
            f"{cfg.insightface.name} ONNX files there (fairforge never downloads them)"
        )
    for name, digest in cfg.insightface.sha256.items():
        file = pack / name
        if not file.is_file():
            raise MissingModelError(f"generate.detector.insightface.sha256[{name!r}]: {str(file)!r} not found")
        check_sha256(file, digest, f"generate.detector.insightface.sha256[{name!r}]")
    return pack


#: The FaceAnalysis modules the detector reads: boxes + 5 keypoints, and the 68 landmarks. The
#: pack's recognition, 106-point and gender/age models would run on every face for nothing.
INSIGHTFACE_MODULES = ("detection", "landmark_3d_68")


@register_detector("insightface")
class InsightFaceDetector(Detector):
    """insightface FaceAnalysis over a local pack: SCRFD + 5 keypoints + 68-point landmarks.

    The onnxruntime providers are the detector's own (`generate.detector.insightface.providers`):
    checked before loading (this onnxruntime has them) and after (no session fell back to the CPU).
    """

    name = "insightface"

    def __init__(self, cfg: DetectorConfig, aligner: Aligner, providers: list[str] | None = None) -> None:
        from insightface.app import FaceAnalysis

        from .swap import check_available, check_providers

        insight = cfg.insightface
        providers = list(providers or insight.providers)
        key = "generate.detector.insightface.providers"
        pack = insightface_pack(cfg)
        check_available(providers, key)
        on_gpu = any("CUDA" in p for p in providers)
        with contextlib.redirect_stdout(io.StringIO()):
            self.app = FaceAnalysis(
                name=insight.name,
                root=str(pack.parent.parent),
                providers=providers,
                allowed_modules=list(INSIGHTFACE_MODULES),
            )
            self.app.prepare(
                ctx_id=0 if on_gpu else -1, det_size=(insight.det_size, insight.det_size), det_thresh=insight.det_thresh
            )
        for model in self.app.models.values():
            check_providers(model.session, providers, key)
        self.has_landmarks = "landmark_3d_68" in self.app.models

    def detect(self, image: np.ndarray) -> list[Face]:
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        faces = []
        for face in self.app.get(bgr):
            lmk = face.get("landmark_3d_68")
            landmarks = None if lmk is None else np.asarray(lmk, dtype=np.float64)[:, :2]
            faces.append(
                Face(
                    bbox=np.asarray(face.bbox, dtype=np.float64),
                    kps=np.asarray(face.kps, dtype=np.float64),
                    landmarks=landmarks,
                    score=float(face.det_score),
                )
            )
        return _sorted(faces)


__all__ = [
    "DETECTORS",
    "INSIGHTFACE_MODULES",
    "Detector",
    "Face",
    "MEAN_FACE_68",
    "build_detector",
    "insightface_pack",
    "register_detector",
]
