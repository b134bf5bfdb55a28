"""fairforge.balance (the `balance/` folder): verify, filter, balance, mix, split, release.

Public API used by other stages and the pipeline (imported lazily, so `fairforge --help` does not
import torch):
- `run_balance(config, gen_dir, out_dir, real=(), topup=None)` -> `BalanceResult`
- `run_release(in_dir, release_dir, release_cfg, taxonomy)` and `push_release(release_dir, repo_id)`
- `load_classifier(classifier_cfg, key, taxonomy)` -> `AttributeClassifier`
"""

from __future__ import annotations

from fairforge.lazy import lazy_getattr

_EXPORTS = {
    "BACKENDS": ".backends",
    "load_classifier": ".backends",
    "register_backend": ".backends",
    "AttributeClassifier": ".classifier",
    "generate_topup": ".loop",
    "push_release": ".push",
    "run_release": ".release",
    "BalanceResult": ".run",
    "run_balance": ".run",
}
__getattr__ = lazy_getattr(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
