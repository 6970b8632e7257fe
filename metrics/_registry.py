"""The metrics by name, as the tuner and its command line refer to them: each metric class registers itself beside
its definition with :func:`register_metric`; installed packages add metrics through entry points (group
``lrp_tuner.metrics``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from registry import Registry

from ._base import Metric

MetricClass = TypeVar("MetricClass", bound=type[Metric])

ENTRY_POINT_GROUP = "lrp_tuner.metrics"


def _checked(cls: Any) -> type[Metric]:
    """Refuse anything but a Metric subclass, so a bad plug-in fails when it is loaded, not in a study."""
    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        raise TypeError(f"{cls!r} is not a Metric class")
    return cls


METRICS: Registry[type[Metric]] = Registry("metric", ENTRY_POINT_GROUP, check=_checked)
"""Name -> metric class, in registration order."""


def register_metric(name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[MetricClass], MetricClass]:
    """A class decorator that makes a metric known as ``name`` (for ``tune()``, the command line and the panel)."""
    return METRICS.register(name, aliases=aliases)


def metric_class(name: str) -> type[Metric]:
    """The metric class registered as ``name``; an unknown name raises ValueError with the valid names and the
    closest one (the one check of a metric name, for ``tune()`` and the command line alike)."""
    return METRICS.get(name)


def get_metric(name: str, model: nn.Module | None = None, **settings: Any) -> Metric:
    """The metric called ``name`` (a key of ``METRICS``), built with ``settings``.

    Model-free metrics ignore ``model``; model-based ones raise ``ValueError`` without one.
    """
    cls = metric_class(name)
    return cls(model, **settings) if cls.requires_model else cls(**settings)
