"""The metrics by name, as the tuner and its command line refer to them."""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from ._base import Metric
from .complexity import Complexity, Sparseness
from .perturbation import IROF, AbPC, FaithfulnessCorrelation, LeRF, MoRF

METRICS: dict[str, type[Metric]] = {
    "morf": MoRF,
    "lerf": LeRF,
    "abpc": AbPC,
    "faithfulness_correlation": FaithfulnessCorrelation,
    "irof": IROF,
    "sparseness": Sparseness,
    "complexity": Complexity,
}


def metric_class(name: str) -> type[Metric]:
    """The metric class registered as ``name``; an unknown name raises ValueError with the valid names and the
    closest one (the one check of a metric name, for ``tune()`` and the command line alike)."""
    if name not in METRICS:
        close = difflib.get_close_matches(name, list(METRICS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown metric {name!r}{hint}; valid names: {', '.join(sorted(METRICS))}.")
    return METRICS[name]


def get_metric(name: str, model: nn.Module | None = None, **settings: Any) -> Metric:
    """The metric called ``name`` (a key of ``METRICS``), built with ``settings``.

    Model-free metrics ignore ``model``; model-based ones raise ``ValueError`` without one.
    """
    cls = metric_class(name)
    return cls(model, **settings) if cls.requires_model else cls(**settings)
