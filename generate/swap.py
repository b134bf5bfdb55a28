"""inswapper_128 face swaps through insightface's own model zoo.

The swapper is the user's `inswapper_128.onnx` (never downloaded; its sha256 pinned in the config),
loaded with `insightface.model_zoo.get_model(path, providers=...)`, which routes it to `INSwapper`;
the source identity is the ArcFace embedding of the source face (the configured recognition model
or the insightface pack's `w600k_r50.onnx`). The swap runs on the target's full-resolution image
(inswapper aligns its own 128-px face from it), is pasted back inside the target's landmark hull
(`paste_back`), and the result is cropped with the target's own crop matrix: outside the face the
fake is its pristine partner, pixel for pixel, before encoding. (A swap on the 256-px crop would
upscale the 128-px output about 2x over most of the crop, hair and background included.)

Startup check: when the config asks for `CUDAExecutionProvider` and onnxruntime silently falls back
to the CPU (no onnxruntime-gpu, CUDA/cuDNN mismatch), the job stops with that message instead of
running 50x slower.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from fairforge.config.generate import GenerateConfig
from fairforge.errors import FairforgeError, MissingModelError

from .align import kps5_from_68
from .models import resolve_file

CUDA = "CUDAExecutionProvider"


def check_available(requested: list[str], key: str) -> None:
    """Before any session: every provider asked for is one this onnxruntime build has."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    missing = [p for p in requested if p not in available]
    if missing:
        hint = (
            " (install onnxruntime-gpu matching your CUDA, or ask for CPUExecutionProvider)" if CUDA in missing else ""
        )
        raise FairforgeError(f"{key}: {missing[0]} was asked for but this onnxruntime offers {available}{hint}")


def check_providers(session, requested: list[str], key: str) -> None:  # type: ignore[no-untyped-def]
    """After loading: fail loudly when CUDA was asked for but the session fell back to the CPU."""
    got = session.get_providers()
    if CUDA in requested and CUDA not in got:
        raise FairforgeError(f"{key}: {CUDA} was asked for but onnxruntime fell back to {got} (check CUDA/cuDNN)")


def _session_options(threads: int | None):  # type: ignore[no-untyped-def]
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def recognition_path(cfg: GenerateConfig) -> Path:
    ins = cfg.inswapper
    if ins.recognition:
        return resolve_file(ins.recognition, "generate.inswapper.recognition", ins.recognition_sha256)
    from .faces import insightface_pack

    path = insightface_pack(cfg.detector) / "w600k_r50.onnx"
    if not path.is_file():
        raise MissingModelError(f"generate.inswapper.recognition: null, and the insightface pack has no {path.name}")
    return path


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """insightface's alignment calls scikit-image's deprecated `SimilarityTransform.estimate`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="insightface")
        yield


class Swapper:
    """Source embeddings and swaps, both through insightface's model zoo classes."""

    def __init__(self, cfg: GenerateConfig) -> None:
        import onnxruntime
        from insightface.model_zoo import get_model
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX
        from insightface.model_zoo.inswapper import INSwapper

        ins = cfg.inswapper
        model = resolve_file(ins.model, "generate.inswapper.model", ins.sha256, "supply inswapper_128.onnx yourself")
        check_available(ins.providers, "generate.inswapper.providers")
        onnxruntime.set_default_logger_severity(3)  # the graph optimizer's notes about the unused `emap`
        options = _session_options(cfg.num_threads)
        with contextlib.redirect_stdout(io.StringIO()):  # INSwapper prints its input shape
            self.swapper = get_model(str(model), providers=ins.providers, sess_options=options)
            self.recognizer = get_model(str(recognition_path(cfg)), providers=ins.providers, sess_options=options)
        if not isinstance(self.swapper, INSwapper):
            raise FairforgeError(
                f"generate.inswapper.model: {model} is not an inswapper model (inputs target+source 128x128)"
            )
        if not isinstance(self.recognizer, ArcFaceONNX):
            raise FairforgeError(
                "generate.inswapper.recognition: not an ArcFace recognition model (one square input >= 112)"
            )
        check_providers(self.swapper.session, ins.providers, "generate.inswapper.providers")
        check_providers(self.recognizer.session, ins.providers, "generate.inswapper.providers")

    def embedding(self, crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        from insightface.app.common import Face

        face = Face(kps=kps5_from_68(landmarks).astype(np.float32))
        with _quiet():
            embedding = self.recognizer.get(np.ascontiguousarray(crop[:, :, ::-1]), face)
        return np.asarray(embedding, dtype=np.float32)

    def swap(self, image: np.ndarray, landmarks: np.ndarray, source_embedding: np.ndarray) -> np.ndarray:
        """`image` (RGB, full resolution) with the source identity pasted into the target's face region.

        inswapper makes its 128-px face from `image` through its own `norm_crop`; `paste_back` puts
        it back inside the landmark hull only, so hair, background and the image's own sharpness
        stay the pristine image's.
        """
        from insightface.app.common import Face

        target = Face(kps=kps5_from_68(landmarks).astype(np.float32))
        source = Face(embedding=source_embedding)
        with _quiet():
            bgr, matrix = self.swapper.get(np.ascontiguousarray(image[:, :, ::-1]), target, source, paste_back=False)
        return paste_back(image, np.ascontiguousarray(bgr[:, :, ::-1]), matrix, landmarks)


def face_region(shape: tuple[int, int], landmarks: np.ndarray, within: np.ndarray | None = None) -> np.ndarray:
    """float32 HxW in [0, 1]: the landmark hull (inside `within`), eroded then feathered.

    The erosion (and the blur of the same size) is a tenth of the hull's size, as insightface's own
    paste-back feathers its box; the blur never reaches past the erosion, so the region is 0 at
    every pixel outside the hull and outside `within` (the part the swapper's output covers).
    """
    hull = np.zeros(shape, dtype=np.float32)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.rint(landmarks).astype(np.int32)), 1.0)
    if within is not None:
        hull *= within.astype(np.float32)
    size = float(np.sqrt(hull.sum()))
    k = max(int(size * 0.1) // 2 * 2 + 1, 3)
    eroded = cv2.erode(hull, np.ones((k, k), np.uint8))
    return cv2.GaussianBlur(eroded, (k, k), 0) * (eroded.max() > 0)


def paste_back(image: np.ndarray, face: np.ndarray, matrix: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """`face` (the swapper's aligned output, RGB) warped back into `image` inside its face region.

    `matrix` is the image -> aligned-face similarity the swapper used. Outside the region the result
    is `image` exactly.
    """
    h, w = image.shape[:2]
    inverse = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    warped = cv2.warpAffine(face, inverse, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    covered = cv2.warpAffine(np.ones(face.shape[:2], np.float32), inverse, (w, h), borderValue=0)
    mask = face_region((h, w), landmarks, covered >= 0.999)[:, :, None]
    blended = mask * warped.astype(np.float32) + (1.0 - mask) * image.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def generator_id(cfg: GenerateConfig) -> str:
    """`inswapper_128:<sha256 prefix>` of the model file: the swapper's identity in the provenance."""
    from fairforge.manifest import file_sha256

    ins = cfg.inswapper
    path = resolve_file(ins.model, "generate.inswapper.model", ins.sha256, "supply inswapper_128.onnx yourself")
    return f"inswapper_128:{file_sha256(path)[:16]}"
