"""fairforge.generate (the `generate/` folder): the balanced synthetic face set.

`run_generate(cfg, out, seed=..., taxonomy=..., options=JobOptions(...))` runs the job (what
`fairforge generate` calls); `regenerate(out, id, cfg)` remakes one image from its manifest row;
`self_blend` is the SBI recipe on one face; `build_detector` the face detector registry.
"""

from .faces import DETECTORS, build_detector
from .job import JobOptions, run_generate
from .regenerate import regenerate
from .sbi import self_blend

__all__ = ["DETECTORS", "JobOptions", "build_detector", "regenerate", "run_generate", "self_blend"]
