"""Batched faithfulness and quality metrics that score attributions, one score per sample."""

from . import complexity, localisation, perturbation  # noqa: F401  (the metrics register themselves on import)
from ._base import Metric
from ._quantus import from_quantus
from ._registry import METRICS, get_metric, metric_class, register_metric
from .complexity import Complexity, Sparseness
from .localisation import PointingGame, RelevanceMassAccuracy, RelevanceRankAccuracy
from .perturbation import BASELINES, IROF, AbPC, FaithfulnessCorrelation, LeRF, MoRF

__all__ = [
    "Metric",
    "MoRF",
    "LeRF",
    "AbPC",
    "FaithfulnessCorrelation",
    "IROF",
    "Sparseness",
    "Complexity",
    "RelevanceMassAccuracy",
    "RelevanceRankAccuracy",
    "PointingGame",
    "from_quantus",
    "BASELINES",
    "METRICS",
    "get_metric",
    "metric_class",
    "register_metric",
]
