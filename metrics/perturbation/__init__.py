"""Perturbation metrics: the model's output as features ranked by the attribution take a baseline value (AbPC,
MoRF, LeRF, IROF, faithfulness correlation), on one batched perturbation engine."""

from ._abpc import AbPC
from ._baselines import BASELINES, DEFAULT_BASELINE, Baseline, make_baseline, study_baseline
from ._engine import DEFAULT_BATCH_SIZE, PerturbationMetric, model_device
from ._faithfulness_correlation import FaithfulnessCorrelation
from ._irof import IROF
from ._lerf import LeRF
from ._morf import MoRF
from ._region import DEFAULT_STEPS, RegionPerturbation

__all__ = [
    "BASELINES",
    "DEFAULT_BASELINE",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_STEPS",
    "IROF",
    "AbPC",
    "Baseline",
    "FaithfulnessCorrelation",
    "LeRF",
    "MoRF",
    "PerturbationMetric",
    "RegionPerturbation",
    "make_baseline",
    "model_device",
    "study_baseline",
]
