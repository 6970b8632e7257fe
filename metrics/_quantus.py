"""Any Quantus metric behind this package's ``Metric`` API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._base import Metric, check_inputs
from .perturbation._engine import model_device


@contextlib.contextmanager
def numpy_compat() -> Iterator[None]:
    """Provide ``np.trapz`` (removed in numpy 2.4, still called by Quantus 0.6) for the duration."""
    added = not hasattr(np, "trapz")
    if added:
        np.trapz = np.trapezoid  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if added:
            del np.trapz  # type: ignore[attr-defined]


@contextlib.contextmanager
def numpy_seed(seed: int | None) -> Iterator[None]:
    """Seed numpy's global RNG (which Quantus draws from) for the duration, then restore its state."""
    if seed is None:
        yield
        return
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class QuantusMetric(Metric):
    """A Quantus metric instance as a ``Metric``; build it with :func:`from_quantus`.

    ``evaluate`` converts the tensors to numpy, calls ``metric(model=..., x_batch=..., y_batch=...,
    a_batch=..., device=..., **call_kwargs)`` and returns its per-sample scores as a (B,) tensor.
    ``direction`` follows the metric's ``score_direction``.
    """

    requires_model = False

    SETTINGS = ("metric", "seed")

    def __init__(
        self, metric: Any, model: nn.Module | None = None, *, seed: int | None = None, **call_kwargs: Any
    ) -> None:
        if not callable(metric) or not hasattr(metric, "score_direction"):
            raise ValueError(
                f"from_quantus needs a Quantus metric instance, e.g. quantus.PixelFlipping("
                f"return_auc_per_sample=True); got {metric!r}."
            )
        super().__init__(model, quantus_metric=type(metric).__name__, seed=seed)
        self.metric, self.seed, self.call_kwargs = metric, seed, call_kwargs
        direction = getattr(metric.score_direction, "value", str(metric.score_direction)).lower()
        self.direction = "minimize" if "lower" in direction else "maximize"

    def evaluate(self, inputs: Tensor, targets: Tensor, attributions: Tensor) -> Tensor:
        """The Quantus metric's score per sample, (B,)."""
        targets = check_inputs(inputs, targets, attributions)
        kwargs = dict(self.call_kwargs)
        if self.model is not None:
            kwargs.setdefault("device", str(model_device(self.model)))
        with numpy_compat(), numpy_seed(self.seed):
            scores = self.metric(
                model=self.model,
                x_batch=inputs.detach().cpu().numpy(),
                y_batch=targets.cpu().numpy(),
                a_batch=attributions.detach().cpu().numpy(),
                **kwargs,
            )
        scores = np.asarray(scores, dtype=float)
        if scores.shape != (len(inputs),):
            raise ValueError(
                f"{type(self.metric).__name__} returned scores of shape {scores.shape}, not one number per "
                "sample; configure it to return one (e.g. PixelFlipping(return_auc_per_sample=True)) and "
                "return_aggregate=False."
            )
        return torch.as_tensor(scores, dtype=torch.float, device=inputs.device)


def from_quantus(
    metric: Any, model: nn.Module | None = None, *, seed: int | None = None, **call_kwargs: Any
) -> QuantusMetric:
    """Wrap a Quantus metric instance (e.g. ``quantus.FaithfulnessCorrelation()``) as a ``Metric``.

    Args:
        metric: the configured Quantus metric; it must return one score per sample.
        model: the model for model-based Quantus metrics (None for model-free ones).
        seed: Quantus draws from numpy's *global* RNG; with a seed, each call seeds it and restores
            the previous global state afterwards, so results are reproducible and the caller's RNG
            stream is untouched. With None, Quantus advances the global RNG as usual.
        call_kwargs: passed on to every Quantus call (e.g. ``softmax=True``, ``batch_size=64``).

    Quantus 0.6 calls ``np.trapz``, removed in numpy 2.4; the wrapper provides it during its calls.
    """
    return QuantusMetric(metric, model, seed=seed, **call_kwargs)
