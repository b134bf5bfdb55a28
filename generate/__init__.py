"""fairforge.generate (the `generate/` folder): the balanced synthetic face set.

`run_generate(cfg, out, seed=..., taxonomy=..., options=JobOptions(...))` runs the job (what
`fairforge generate` calls); `regenerate(out, id, cfg)` remakes one image from its manifest row;
`self_blend` is the SBI recipe on one face; `build_detector` the face detector registry;
`GENERATORS` (in `generate/methods/`) the registry of ways to make an image: a new generator is
one module that registers a `Generator`.
Exports load on first use, so `fairforge --help` does not import OpenCV and pandas.
"""

from __future__ import annotations

from fairforge.lazy import lazy_getattr

_EXPORTS = {
    "DETECTORS": "faces",
    "GENERATORS": "methods",
    "build_detector": "faces",
    "JobOptions": "job",
    "run_generate": "job",
    "regenerate": "reproduce",
    "self_blend": "sbi",
}
__getattr__ = lazy_getattr(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
