"""Importers: the datasets users already have, as manifests (the contract: docs/manifest.md).

Each format is one module with one `import_<format>(...) -> Path` function returning the manifest
it wrote; what happens after parsing (path checks, image checks, placement under `--out`, bad rows)
is shared in `common`, so every importer's output obeys the same contract.

The names below load on first use: `fairforge --help` imports `fairforge.importers.cli`, and with it
this package, which must not pull in pandas and PIL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fairforge.lazy import lazy_getattr

if TYPE_CHECKING:
    from .common import REJECTED_NAME, ImportOptions
    from .deepfakebench import import_deepfakebench
    from .imagefolder import import_imagefolder
    from .pgfdd import import_pgfdd

_HOMES = {
    "REJECTED_NAME": "common",
    "ImportOptions": "common",
    "import_deepfakebench": "deepfakebench",
    "import_imagefolder": "imagefolder",
    "import_pgfdd": "pgfdd",
}
__all__ = ["REJECTED_NAME", "ImportOptions", "import_deepfakebench", "import_imagefolder", "import_pgfdd"]
__getattr__ = lazy_getattr(__name__, _HOMES)
