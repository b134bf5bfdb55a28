"""One alignment and crop for every image of every method and label.

Why one: a detector learns whatever differs between real and fake. If diffusion faces, swaps and
blends were cropped or resampled differently, the crop itself would be a label shortcut. So every
face goes through `Aligner.align`: a similarity transform that puts 5 face points on a fixed
layout, one warp, one crop size.

Two geometries:
- `deepfakebench` (the default): DeepfakeBench's `preprocessing/preprocess.py` crop, the one the
  FF++ / Celeb-DF / DFDC frames users import were made with. Its 5 points are dlib landmarks 37, 44
  (upper eyelids), 30 (nose tip), 49 and 55 (lips); their target is insightface's 112-px ArcFace
  template shifted 8 px right, scaled to the crop side and shrunk by a 1.3 margin
  (`_deepfakebench_template`). Synthetic and imported rows then share one geometry.
- `mean_face`: eye centres, nose tip and mouth corners on a 68-point mean face whose landmark box is
  `face_fraction` of the crop wide, centred at `center_y` (a tighter crop).

The mean face is OpenFace's `align_dlib.TEMPLATE` (Apache-2.0, cmusatyalab/openface), the dlib
68-point mean shape in a unit box. The `template` detector reports `Aligner.landmarks` (the mean
face placed by the geometry) for images that are already aligned crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# fmt: off
MEAN_FACE_68 = np.array([
    (0.0792396913815, 0.339223741112), (0.0829219487236, 0.456955367943), (0.0967927109165, 0.575648016728),
    (0.122141515615, 0.691921601066), (0.168687863544, 0.800341263616), (0.239789390707, 0.895732504778),
    (0.325662452515, 0.977068762493), (0.422318282013, 1.04329000149), (0.531777802068, 1.06080371126),
    (0.641296298053, 1.03981924107), (0.738105872266, 0.972268833998), (0.824444363295, 0.889624082279),
    (0.894792677532, 0.792494155836), (0.939395486253, 0.681546643421), (0.96111933829, 0.562238253072),
    (0.970579841181, 0.441758925744), (0.971193274221, 0.322118743967), (0.163846223133, 0.249151738053),
    (0.21780354657, 0.204255863861), (0.291299351124, 0.192367318323), (0.367460241458, 0.203582210627),
    (0.4392945113, 0.233135599851), (0.586445962425, 0.228141644834), (0.660152671635, 0.195923841854),
    (0.737466449096, 0.182360984545), (0.813236546239, 0.192828009114), (0.8707571886, 0.235293377042),
    (0.51534533827, 0.31863546193), (0.516221448289, 0.396200446263), (0.517118861835, 0.473797687758),
    (0.51816430343, 0.553157797772), (0.433701156035, 0.604054457668), (0.475501237769, 0.62076344024),
    (0.520712933176, 0.634268222208), (0.565874114041, 0.618796581487), (0.607054002672, 0.60157671656),
    (0.252418718401, 0.331052263829), (0.298663015648, 0.302646354002), (0.355749724218, 0.303020650651),
    (0.403718978315, 0.33867711083), (0.352507175597, 0.349987615384), (0.296791759886, 0.350478978225),
    (0.631326076346, 0.334136672344), (0.679073381078, 0.29645404267), (0.73597236153, 0.294721285802),
    (0.782865376271, 0.321305281656), (0.740312274764, 0.341849376713), (0.68499850091, 0.343734332172),
    (0.353167761422, 0.746189164237), (0.414587777921, 0.719053835073), (0.477677654595, 0.706835892494),
    (0.522732900812, 0.717092275768), (0.569832064287, 0.705414478982), (0.635195811927, 0.71565572516),
    (0.69951672331, 0.739419187253), (0.639447159575, 0.805236879972), (0.576410514055, 0.835436670169),
    (0.525398405766, 0.841706377792), (0.47641545769, 0.837505914975), (0.41379548902, 0.810045601727),
    (0.380084785646, 0.749979603086), (0.477955996282, 0.74513234612), (0.523389793327, 0.748924302636),
    (0.571057789237, 0.74332894691), (0.672409137852, 0.744177032192), (0.572539621444, 0.776609286626),
    (0.5240106503, 0.783370783245), (0.477561227414, 0.778476346951),
], dtype=np.float64)
# fmt: on


def kps5_from_68(landmarks: np.ndarray) -> np.ndarray:
    """insightface's 5 keypoints from 68 dlib points: eye centres, nose tip, mouth corners (image left first)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    return np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])


def canonical_68(size: int, face_fraction: float = 0.7, center_y: float = 0.55) -> np.ndarray:
    """The mean face placed in a `size` x `size` crop: landmark box `face_fraction` wide, centred."""
    lo, hi = MEAN_FACE_68.min(0), MEAN_FACE_68.max(0)
    unit = (MEAN_FACE_68 - (lo + hi) / 2) * (face_fraction / (hi[0] - lo[0]))
    return (unit + np.array([0.5, center_y])) * size


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, translation) taking `src` points closest to `dst`.

    Umeyama (1991) least squares without reflection, the estimate insightface and dlib crops use.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sigma) @ sign) / s.var(0).sum()
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - scale * rot @ mu_s
    return matrix


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


#: The 68-point indices DeepfakeBench aligns on (`get_keypts`: `shape.part(37)`, 44, 30, 49, 55).
DEEPFAKEBENCH_POINTS = (37, 44, 30, 49, 55)
#: insightface's ArcFace template for a 112x112 crop (eye centres, nose tip, mouth corners).
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
GEOMETRIES = ("deepfakebench", "mean_face")


def _deepfakebench_template(size: int, scale: float = 1.3) -> np.ndarray:
    """Where DeepfakeBench's `img_align_crop(outsize=(size, size), scale=1.3)` puts its 5 points.

    Its `dst` is ArcFace's 96-wide template (ARCFACE_112 minus 8 px in x) plus 8 px, scaled by
    size/112, moved by the margin `size * (scale - 1) / 2` and shrunk by `1 / scale`.
    """
    margin = size * (scale - 1) / 2
    return (ARCFACE_112 * size / 112 + margin) * (size / (size + 2 * margin))


def _place(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The mean face moved by the similarity that best puts `points` (its rows) on `targets`."""
    return transform_points(MEAN_FACE_68, umeyama(points, targets))


@dataclass(frozen=True)
class Aligner:
    """Crop geometry shared by every method: target points for a square crop of `crop_size`."""

    crop_size: int = 256
    face_fraction: float = 0.7
    center_y: float = 0.55
    geometry: str = "deepfakebench"

    def __post_init__(self) -> None:
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"geometry {self.geometry!r}: expected one of {list(GEOMETRIES)}")

    @classmethod
    def from_config(cls, cfg) -> Aligner:  # type: ignore[no-untyped-def]
        """From a `generate.align` config section."""
        return cls(cfg.crop_size, cfg.face_fraction, cfg.center_y, cfg.geometry)

    @property
    def template(self) -> np.ndarray:
        """The 5 target points of the geometry, in crop pixels."""
        if self.geometry == "deepfakebench":
            return _deepfakebench_template(self.crop_size)
        return kps5_from_68(canonical_68(self.crop_size, self.face_fraction, self.center_y))

    @property
    def landmarks(self) -> np.ndarray:
        """The 68-point mean face as this geometry places it in the crop."""
        if self.geometry == "deepfakebench":
            return _place(MEAN_FACE_68[list(DEEPFAKEBENCH_POINTS)], self.template)
        return canonical_68(self.crop_size, self.face_fraction, self.center_y)

    @property
    def kps(self) -> np.ndarray:
        """insightface's 5 keypoints of `landmarks` (what the swapper and ArcFace are given)."""
        return kps5_from_68(self.landmarks)

    def points(self, kps: np.ndarray, landmarks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(face points, their targets): DeepfakeBench's landmarks when the face has 68 of them."""
        if self.geometry == "deepfakebench":
            if landmarks is not None and len(landmarks) >= 68:
                return np.asarray(landmarks, np.float64)[list(DEEPFAKEBENCH_POINTS)], self.template
            return np.asarray(kps, np.float64), self.kps
        return np.asarray(kps, np.float64), self.template

    def matrix(self, kps: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        src, dst = self.points(kps, landmarks)
        return umeyama(src, dst)

    def align(self, image: np.ndarray, kps: np.ndarray, landmarks: np.ndarray | None = None):  # type: ignore[no-untyped-def]
        """(crop, landmarks in crop coordinates or None): the face warped onto the geometry."""
        matrix = self.matrix(kps, landmarks)
        moved = None if landmarks is None else transform_points(landmarks, matrix)
        return self.warp(image, matrix), moved

    def warp(self, image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """The crop of `image` under `matrix` (image -> crop pixels).

        Every crop of the set goes through here, so a fake made on the full-resolution image and
        cropped with its pristine face's matrix has exactly that face's pixels where it is unchanged.
        A large downscale first goes through an area resize, so a 1024-px face cropped to 256 is not
        aliased (a bilinear warp alone would skip pixels).
        """
        matrix = np.asarray(matrix, np.float64)
        scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        source = image
        if scale < 0.5:
            factor = 2.0 * scale
            source = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            ratio_x = source.shape[1] / image.shape[1]
            ratio_y = source.shape[0] / image.shape[0]
            matrix = matrix @ np.diag([1 / ratio_x, 1 / ratio_y, 1.0])
        size = self.crop_size
        return cv2.warpAffine(source, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
