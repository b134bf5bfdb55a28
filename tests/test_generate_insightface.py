"""The insightface backend through insightface's own `FaceAnalysis`, on the tiny buffalo-like pack."""

from __future__ import annotations

import contextlib
import io

import cv2
import numpy as np
import pytest

from fairforge import tiny
from fairforge.config.generate import DetectorConfig
from fairforge.errors import ConfigError, FairforgeError
from fairforge.generate.align import Aligner
from fairforge.generate.faces import DETECTORS, INSIGHTFACE_MODULES, build_detector
from fairforge.tiny.insightface_pack import PACK_NAME


def _config(**insightface) -> DetectorConfig:
    return DetectorConfig(
        backend="insightface", insightface={"root": "tiny:insightface", "name": PACK_NAME, **insightface}
    )


def _blobs() -> np.ndarray:
    """Two bright discs on a dark ground: the tiny SCRFD's idea of two faces, the right one larger."""
    image = np.full((256, 256, 3), 20, np.uint8)
    cv2.circle(image, (160, 100), 26, (230, 230, 230), -1)
    cv2.circle(image, (60, 190), 17, (230, 230, 230), -1)
    return image


@pytest.fixture(scope="module")
def detector(tiny_cache):
    return build_detector(_config(), Aligner(crop_size=128))


def test_the_tiny_pack_is_routed_like_buffalo_l(tiny_cache):
    from insightface.model_zoo import get_model

    pack = tiny.ensure("insightface") / "models" / PACK_NAME
    tasks = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for name in ("det_10g", "1k3d68", "2d106det", "w600k_r50"):
            model = get_model(str(pack / f"{name}.onnx"), providers=["CPUExecutionProvider"])
            tasks[name] = (type(model).__name__, model.taskname)
    assert tasks == {
        "det_10g": ("SCRFD", "detection"),
        "1k3d68": ("Landmark", "landmark_3d_68"),
        "2d106det": ("Landmark", "landmark_2d_106"),
        "w600k_r50": ("ArcFaceONNX", "recognition"),
    }


def test_faceanalysis_loads_only_the_modules_the_detector_reads(detector):
    assert set(detector.app.models) == set(INSIGHTFACE_MODULES) == {"detection", "landmark_3d_68"}
    assert detector.has_landmarks


def test_faces_come_back_in_image_pixels_largest_first(detector):
    faces = detector.detect(_blobs())
    assert len(faces) == 2
    big, small = faces
    assert big.area > small.area and big.score > 0.5
    for face, (cx, cy) in ((big, (160, 100)), (small, (60, 190))):
        x0, y0, x1, y1 = face.bbox
        assert x0 < cx < x1 and y0 < cy < y1
        assert face.kps.shape == (5, 2) and face.landmarks.shape == (68, 2)
        inside = (face.landmarks >= face.bbox[:2] - 1) & (face.landmarks <= face.bbox[2:] + 1)
        assert inside.all()
    assert detector.detect(np.zeros((256, 256, 3), np.uint8)) == []
    assert detector.best(_blobs(), min_score=0.5) is not None
    assert detector.best(_blobs(), min_score=0.999) is None


def test_a_detected_face_aligns_onto_the_canonical_layout(detector):
    aligner = Aligner(crop_size=128)
    face = detector.best(_blobs())
    crop, landmarks = aligner.align(_blobs(), face.kps, face.landmarks)
    assert crop.shape == (128, 128, 3) and landmarks.shape == (68, 2)
    assert crop[64, 64].mean() > 200  # the face's centre is the crop's


def test_the_detector_asks_for_its_own_providers(tiny_cache):
    with pytest.raises(FairforgeError, match=r"generate\.detector\.insightface\.providers: CUDAExecutionProvider"):
        build_detector(_config(providers=["CUDAExecutionProvider", "CPUExecutionProvider"]), Aligner())


def test_a_silent_cpu_fallback_stops_the_detector(tiny_cache, monkeypatch):
    import onnxruntime

    # an onnxruntime that lists CUDA but cannot start it (CUDA/cuDNN mismatch): sessions come up on the CPU
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    with pytest.raises(FairforgeError, match="fell back to"):
        build_detector(_config(providers=["CUDAExecutionProvider", "CPUExecutionProvider"]), Aligner())


def test_an_unknown_backend_names_the_choices():
    with pytest.raises(ConfigError, match=r"unknown face detector 'nope'; expected one of \['dlib', 'insightface'"):
        DETECTORS.get("nope")
    with pytest.raises(ValueError, match="registered twice"):
        DETECTORS.register("dlib")(type("Other", (), {}))
