"""fairforge.evaluate (the `evaluate/` folder): detection and fairness metrics, reports and plots.

The library API (light: numpy and pandas) is `fairness_report`, which `train` calls on its validation
predictions every epoch. `fairforge evaluate` (see `run.py`) adds files, cross-dataset tables and plots.
"""

from .bootstrap import Bootstrap, bootstrap_stats
from .cross import cross_dataset
from .groups import ATTRIBUTES, Cells, make_cells
from .inputs import Predictions, check_predictions, read_predictions
from .metrics import FAIRNESS_METRICS, GROUP_METRICS
from .report import Report, fairness_report, report_from_predictions
from .stats import GroupStats, group_stats

__all__ = [
    "ATTRIBUTES",
    "FAIRNESS_METRICS",
    "GROUP_METRICS",
    "Bootstrap",
    "Cells",
    "GroupStats",
    "Predictions",
    "Report",
    "bootstrap_stats",
    "check_predictions",
    "cross_dataset",
    "fairness_report",
    "group_stats",
    "make_cells",
    "read_predictions",
    "report_from_predictions",
]
