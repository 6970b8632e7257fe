"""LeRF: region perturbation, least relevant features first."""

from __future__ import annotations

from torch import Tensor

from .._registry import register_metric
from ._region import RegionPerturbation


@register_metric("lerf")
class LeRF(RegionPerturbation):
    """Area over the LeRF perturbation curve. Lower is better.

    Features are removed least relevant first in S = ``n_steps`` equal steps (see
    :mod:`metrics.perturbation._region`); with p the target's softmax probability and x^(k) the input after k
    steps,

        LeRF(x) = 1/S * sum_{k=1..S} [ p(x) - p(x^(k)) ].

    A faithful attribution removes the irrelevant features first, so p stays high and the score is
    low. Makes ceil((S + 1) B / batch_size) forward passes, ceil(S B / batch_size) with ``reference``.

    Reference: W. Samek et al., "Evaluating the visualization of what a deep neural network has
    learned", IEEE TNNLS 28(11), 2017 (LeRF as the reverse order of MoRF).
    """

    direction = "minimize"
    most_relevant_first = False

    def evaluate(
        self, inputs: Tensor, targets: Tensor, attributions: Tensor, *, reference: Tensor | None = None
    ) -> Tensor:
        """LeRF area per sample, (B,); ``reference``: p(x) from :meth:`reference`, if already known."""
        return self._aopc(inputs, targets, attributions, reference)
