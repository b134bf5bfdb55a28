"""Self-blended images (Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022).

A face is blended with a slightly altered copy of itself, so the fake carries only the generic
artefacts of blending (boundary, colour and resolution mismatch), never a particular generator's.
The steps and their parameters are the paper's code (`SelfBlendedImages/src/utils/sbi.py` and
`blend.py`, with albumentations), rewritten in numpy/OpenCV with one seeded generator per image:

1. mask: one of Face X-ray's four hulls drawn uniformly (`dfl_full`, `extended`, `components`,
   `facehull`; the reference takes this branch when the Face X-ray library is installed, as
   DeepfakeBench always does); 81-point landmarks are cut to the first 68 with p=0.25 first;
2. source = a copy of the image; either the source or the target gets the colour and quality
   transform (p=0.5 each; drawn first, so the plan knows it from the seed). When the target is
   transformed, the fake's real partner is that transformed target (the reference code returns it
   as the pair's real image), so outside the blend mask a fake equals its partner exactly. The
   transform: RGB shift +-20 (p=0.3), HSV shift, brightness/contrast +-0.1, then one of a
   nearest-neighbour downscale by 2 or 4 (and linear upscale back) or a sharpen;
3. the source and mask get a small affine (translate x +-3%, y +-1.5%, x and y scales drawn apart
   from 0.95..1/0.95, as albumentations' `Affine(scale=[a, b])` does), the mask an elastic warp
   (alpha 50, sigma 7, border reflect-101 as albumentations' default);
4. the float mask is resized to 192..256 px, blurred, divided by its maximum and cut below 1 (which
   erodes it by the kernel's reach), blurred again (random kernels 5..25, sigma 5..45), normalized,
   resized back and multiplied by a blend ratio from {0.25, 0.5, 0.75, 1, 1, 1};
   blended = mask * source + (1 - mask) * target.

The reference blends on a wide crop around the face (`crop_face(margin=True)`: the 68-point box
plus half its width on each side, its height above and 2/5 of it below) and crops after; here the
blend runs on the set's own crop, so the mask's working size is scaled by the ratio of the face's
share of the two crops (`reference_scale`), which keeps every kernel the same size relative to the
face as in the reference (the DeepfakeBench crop gives the face a slightly larger share, so the
working mask is a little smaller; the old 0.7-wide crop made kernels ~0.7x the reference's).

Kept deviations, each numerical and behind nothing because it changes no distribution:
albumentations' elastic field is a scipy Gaussian filter, here `cv2.GaussianBlur` with the same
sigma; HSV shifts use albumentations' uint8 look-up tables, where the paper's limits of 0.3 are a
very small shift (kept: it is the published recipe). Config switches restore the earlier
behaviour where one is wanted: `hull_kinds: [facehull]` (the reference without the Face X-ray
library), `isotropic_scale`, `reference_scale: false`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from fairforge.config.generate import SBIConfig

#: Face X-ray / faceswap part hulls over the 68 dlib points (`DeepFakeMask.dfl_full`, `components`).
#: The reference's hull kinds (`random_get_hull`: `dfl_full`, `extended`, `components`, `facehull`).
HULL_KINDS = ("dfl_full", "extended", "components", "facehull")
#: Share of the reference's margin crop the 68-point box takes: width w of w + 2 * w/2, height h of
#: h + h + 2h/5 (`crop_face(margin=True)`).
REFERENCE_FACE_SHARE = (1 / 2, 1 / 2.4)
PART_HULLS: dict[str, list[list[int]]] = {
    "dfl_full": [
        [*range(0, 17), *range(48, 68), 0, 8, 16],
        [*range(27, 31), 33],
        [*range(17, 27), 0, 27, 16, 33],
    ],
    "components": [
        [*range(0, 9), 17],
        [*range(8, 17), 26],
        [*range(17, 20), 8],
        [*range(24, 27), 8],
        [*range(19, 25), 8],
        [*range(17, 22), 27, *range(31, 36), 8],
        [*range(22, 27), 27, *range(31, 36), 8],
        [*range(27, 31), *range(31, 36)],
    ],
}


@dataclass
class SBIResult:
    """The blended face and everything a test or a provenance record needs to check it."""

    image: np.ndarray  # uint8 HxWx3, the fake
    mask: np.ndarray  # float HxW in [0, 1], the final blend mask (already times the blend ratio)
    hull: np.ndarray  # uint8 HxW {0, 1}, the hull mask before any warp
    source: np.ndarray  # uint8, the (transformed, shifted) source that was blended in
    target: np.ndarray  # uint8, the (possibly transformed) target it was blended onto
    params: dict[str, Any] = field(default_factory=dict)


def extended_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Face X-ray's `extended` mask points: the eyebrows moved up by half their distance to the eyes.

    Integer arithmetic as the reference (int32 landmarks, floor division).
    """
    pts = np.asarray(landmarks).astype(np.int32).copy()
    ml, mr = (pts[36] + pts[0]) // 2, (pts[16] + pts[45]) // 2
    ql, qr = (pts[36] + ml) // 2, (pts[45] + mr) // 2
    bot_l = np.array([ql, pts[36], pts[37], pts[38], pts[39]])
    bot_r = np.array([pts[42], pts[43], pts[44], pts[45], qr])
    top_l, top_r = pts[17:22].copy(), pts[22:27].copy()
    pts[17:22] = top_l + (top_l - bot_l) // 2
    pts[22:27] = top_r + (top_r - bot_r) // 2
    return pts


def hull_mask(shape: tuple[int, int], landmarks: np.ndarray, kind: str = "facehull") -> np.ndarray:
    """{0, 1} mask of the convex hull of the landmarks (`facehull`) or of a part-hull union."""
    mask = np.zeros(shape, dtype=np.uint8)
    if kind == "extended":
        pts, groups = extended_landmarks(landmarks), PART_HULLS["components"]
    else:
        pts = np.asarray(landmarks).astype(np.int32)
        groups = [list(range(len(pts)))] if kind == "facehull" else PART_HULLS[kind]
    for group in groups:
        cv2.fillConvexPoly(mask, cv2.convexHull(pts[group]), 1)
    return mask


def _rgb_shift(image: np.ndarray, rng: np.random.Generator, cfg: SBIConfig) -> np.ndarray:
    shift = rng.uniform(-cfg.rgb_shift, cfg.rgb_shift, size=3)
    return np.clip(image.astype(np.float32) + shift.astype(np.float32), 0, 255).astype(np.uint8)


def _hsv_shift(image: np.ndarray, rng: np.random.Generator, cfg: SBIConfig) -> np.ndarray:
    hue, sat, val = (rng.uniform(-lim, lim) for lim in (cfg.hue_shift, cfg.sat_shift, cfg.val_shift))
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    ramp = np.arange(256, dtype=np.float64)
    luts = [np.mod(ramp + hue, 180).astype(np.uint8), *(np.clip(ramp + s, 0, 255).astype(np.uint8) for s in (sat, val))]
    hsv = np.stack([cv2.LUT(hsv[:, :, c], luts[c]) for c in range(3)], axis=2)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _brightness_contrast(image: np.ndarray, rng: np.random.Generator, cfg: SBIConfig) -> np.ndarray:
    alpha = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
    beta = rng.uniform(-cfg.brightness, cfg.brightness)
    lut = np.clip(np.arange(256) * alpha + beta * 255, 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


def _downscale(image: np.ndarray, ratio: int) -> np.ndarray:
    h, w = image.shape[:2]
    small = cv2.resize(image, (int(w / ratio), int(h / ratio)), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _sharpen(image: np.ndarray, alpha: float, lightness: float) -> np.ndarray:
    identity = np.zeros((3, 3), np.float32)
    identity[1, 1] = 1
    effect = -np.ones((3, 3), np.float32)
    effect[1, 1] = 8 + lightness
    return cv2.filter2D(image, -1, (1 - alpha) * identity + alpha * effect)


def source_transform(image: np.ndarray, rng: np.random.Generator, cfg: SBIConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Colour then quality change (the paper's `get_source_transforms`)."""
    out = image
    params: dict[str, Any] = {}
    if rng.random() < cfg.rgb_shift_p:
        out = _rgb_shift(out, rng, cfg)
        params["rgb_shift"] = True
    out = _hsv_shift(out, rng, cfg)
    out = _brightness_contrast(out, rng, cfg)
    if rng.random() < 0.5:
        ratio = int(cfg.downscale_ratios[rng.integers(len(cfg.downscale_ratios))])
        out = _downscale(out, ratio)
        params["degrade"] = f"downscale{ratio}"
    else:
        alpha = rng.uniform(*cfg.sharpen_alpha)
        lightness = rng.uniform(*cfg.sharpen_lightness)
        out = _sharpen(out, alpha, lightness)
        params["degrade"] = "sharpen"
    return out, params


def random_affine(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, cfg: SBIConfig):  # type: ignore[no-untyped-def]
    """The same small affine on the source (linear) and the mask (nearest), then an elastic mask warp."""
    h, w = mask.shape
    tx = rng.uniform(-cfg.translate_x, cfg.translate_x) * w
    ty = rng.uniform(-cfg.translate_y, cfg.translate_y) * h
    sx = rng.uniform(*cfg.scale)
    sy = sx if cfg.isotropic_scale else rng.uniform(*cfg.scale)
    cx, cy = w / 2 - 0.5, h / 2 - 0.5
    matrix = np.array([[sx, 0, cx - sx * cx + tx], [0, sy, cy - sy * cy + ty]], dtype=np.float64)
    image = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.warpAffine(mask, matrix, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    noise = (rng.random((2, h, w)) * 2 - 1).astype(np.float32)
    dx = cv2.GaussianBlur(noise[0], (0, 0), cfg.elastic_sigma) * cfg.elastic_alpha
    dy = cv2.GaussianBlur(noise[1], (0, 0), cfg.elastic_sigma) * cfg.elastic_alpha
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mask = cv2.remap(mask, grid_x + dx, grid_y + dy, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
    return image, mask, {"translate": [float(tx), float(ty)], "scale": [float(sx), float(sy)]}


def reference_scale(landmarks: np.ndarray, shape: tuple[int, int]) -> tuple[float, float]:
    """(x, y) factors from the reference's margin crop to this image, relative to the face.

    The reference resizes the mask of its margin crop to 192..256 px, where the 68-point box takes
    `REFERENCE_FACE_SHARE` of the crop; scaling that working size by (share there / share here)
    puts the face at the same size in pixels, so its blur kernels mean the same.
    """
    pts = np.asarray(landmarks, np.float64)[:68]
    h, w = shape
    box_w, box_h = np.ptp(pts[:, 0]), np.ptp(pts[:, 1])
    return REFERENCE_FACE_SHARE[0] / (box_w / w), REFERENCE_FACE_SHARE[1] / (box_h / h)


def blend_mask(
    mask: np.ndarray, rng: np.random.Generator, scale: tuple[float, float] = (1.0, 1.0)
) -> tuple[np.ndarray, dict[str, Any]]:
    """Resize to 192..256 (times `scale`), blur, binarize, blur again, normalize, resize back.

    The paper's `get_blend_mask`, on a float mask: the blurred mask divided by its maximum is 1
    only where the kernel saw no background, so cutting below 1 erodes it by the kernel's reach.
    """
    h, w = mask.shape
    mask = mask.astype(np.float32)
    size_h, size_w = int(rng.integers(192, 257)), int(rng.integers(192, 257))
    size_w, size_h = max(int(round(size_w * scale[0])), 8), max(int(round(size_h * scale[1])), 8)
    resized = cv2.resize(mask, (size_w, size_h))
    k1, k2 = (int(rng.choice(np.arange(5, 26, 2))) for _ in range(2))
    sigma2 = int(rng.integers(5, 46))
    blurred = cv2.GaussianBlur(resized, (k1, k1), 0)
    peak = blurred.max()
    if peak == 0:
        raise ValueError("the SBI mask is empty after its warp (landmarks outside the image?)")
    blurred = blurred / peak
    blurred[blurred < 1] = 0
    blurred = cv2.GaussianBlur(blurred, (k2, k2), sigma2)
    blurred = blurred / blurred.max()
    return cv2.resize(blurred, (w, h)), {"kernels": [k1, k2], "sigma": sigma2, "size": [size_w, size_h]}


def transforms_target(rng: np.random.Generator) -> bool:
    """The first draw of every blend: does the colour/quality transform fall on the target?

    It comes first so that the plan can tell from the seed alone (`target_is_transformed`) which
    fakes need their transformed target written as a real row of its own: their pair partner.
    """
    return bool(rng.random() >= 0.5)


def target_is_transformed(seed: int) -> bool:
    """Whether `self_blend(..., seed)` transforms the target (then `SBIResult.target` is the partner)."""
    return transforms_target(np.random.default_rng(seed))


def self_blend(image: np.ndarray, landmarks: np.ndarray, seed: int, cfg: SBIConfig | None = None) -> SBIResult:
    """One self-blended fake of `image` (RGB uint8) with its landmarks (68 or 81 points), reproducible from `seed`."""
    cfg = cfg or SBIConfig()
    rng = np.random.default_rng(seed)
    on_target = transforms_target(rng)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    h, w = image.shape[:2]
    if len(landmarks) > 68 and rng.random() < cfg.subset_hull_prob:
        landmarks = landmarks[:68]
    kinds = list(cfg.hull_kinds)
    kind = kinds[int(rng.integers(len(kinds)))] if len(kinds) > 1 else kinds[0]
    if kind != "facehull" and len(landmarks) < 68:
        raise ValueError(f"SBI hull {kind!r} needs 68 landmarks, got {len(landmarks)}")
    hull = hull_mask((h, w), landmarks, kind)
    params: dict[str, Any] = {"hull": kind}
    target = image.copy()
    source = image.copy()
    if on_target:
        target, changes = source_transform(target, rng, cfg)
        params["transformed"] = "target"
    else:
        source, changes = source_transform(source, rng, cfg)
        params["transformed"] = "source"
    params.update(changes)
    source, mask, affine = random_affine(source, hull, rng, cfg)
    params.update(affine)
    scale = reference_scale(landmarks, (h, w)) if cfg.reference_scale else (1.0, 1.0)
    soft, blur = blend_mask(mask, rng, scale)
    params.update(blur)
    ratio = float(cfg.blend_ratios[rng.integers(len(cfg.blend_ratios))])
    soft = soft * ratio
    params["blend_ratio"] = ratio
    weight = soft[:, :, None]
    blended = (weight * source + (1 - weight) * target).astype(np.uint8)
    return SBIResult(image=blended, mask=soft, hull=hull, source=source, target=target, params=params)
