"""Batched faithfulness and quality metrics that score attributions, one score per sample."""

from ._abpc import AbPC
from ._base import Metric
from ._complexity import Complexity
from ._faithfulness_correlation import FaithfulnessCorrelation
from ._irof import IROF
from ._lerf import LeRF
from ._morf import MoRF
from ._quantus import from_quantus
from ._registry import METRICS, get_metric, metric_class
from ._sparseness import Sparseness

__all__ = [
    "Metric",
    "MoRF",
    "LeRF",
    "AbPC",
    "FaithfulnessCorrelation",
    "IROF",
    "Sparseness",
    "Complexity",
    "from_quantus",
    "METRICS",
    "get_metric",
    "metric_class",
]
