"""Benchmark of `fairforge audit`: images/s over a set of face crops on disk (CPU).

    python bench/audit.py                      # 10,000 crops of 256 px (5,000 fakes and partners)
    python bench/audit.py --images 2000 --size 128

The set is made once in a temporary folder: textured crops with the template's landmarks, each
fake its partner changed inside the face only, as a clean generated set is. The audit reads every
image once, computes the pair statistics and the outside-the-face features, and fits the
cross-validated probe with its bootstrap interval; the figure is images read per second of the
whole `run_audit` call, the median of `--rounds` runs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from fairforge.balance.audit import outside_region, run_audit
from fairforge.config.balance import AuditConfig
from fairforge.generate.align import Aligner
from fairforge.manifest import to_frame


def make_set(folder: Path, n_images: int, size: int, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    landmarks = Aligner(crop_size=size).landmarks
    face = ~outside_region((size, size), landmarks, AuditConfig(dilate=0.0))
    flat = [float(v) for v in landmarks.ravel()]
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(n_images // 2):
        real = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (0, 0), 1.5)
        fake = real.copy()
        fake[face] = 255 - fake[face]
        for kind, image, label in (("r", real, 0), ("f", fake, 1)):
            path = f"images/{kind}{i}.png"
            cv2.imwrite(str(folder / path), image)
            rows.append(
                {
                    "id": f"{kind}{i}",
                    "path": path,
                    "label": label,
                    "method": "sbi" if label else "diffusion",
                    "source": "fairforge-synth",
                    "gender": "male",
                    "race": "Asian",
                    "age": "20-29",
                    "identity": f"r{i}",
                    "dst_id": f"r{i}" if label else None,
                    "width": size,
                    "height": size,
                    "landmarks": flat,
                }
            )
    return to_frame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    try:
        t0 = time.perf_counter()
        frame = make_set(work, args.images, args.size)
        made = time.perf_counter() - t0
        cfg = AuditConfig(max_per_probe=0)
        times, result = [], None
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            result = run_audit(frame, work, cfg)
            times.append(time.perf_counter() - t0)
        assert result is not None
        seconds = statistics.median(times)
        print(f"audit of {result['images_read']} crops of {args.size}px (set written in {made:.1f} s)")
        print(f"  run_audit           : {seconds:8.2f} s")
        print(f"  throughput          : {result['images_read'] / seconds:8.1f} images/s")
        print(f"  probe sbi AUC       : {result['probes']['sbi']['auc']:.3f} (clean set: near 0.5)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
