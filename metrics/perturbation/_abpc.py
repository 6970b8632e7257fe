"""AbPC: the area between the LeRF and MoRF perturbation curves."""

from __future__ import annotations

import torch
from torch import Tensor

from .._registry import register_metric
from ._region import RegionPerturbation


@register_metric("abpc")
class AbPC(RegionPerturbation):
    """Area between the perturbation curves, LeRF above MoRF. Higher is better.

    With S = ``n_steps`` equal steps (see :mod:`metrics.perturbation._region`), x_MoRF^(k) / x_LeRF^(k) the
    input after k steps most / least relevant first and p the target's softmax probability,

        AbPC(x) = 1/S * sum_{k=1..S} [ p(x_LeRF^(k)) - p(x_MoRF^(k)) ]  =  MoRF(x) - LeRF(x).

    It rewards removing the evidence first and the irrelevant features last at once, and needs no
    p(x). After step S both orders have perturbed every feature, so that term is exactly 0 and is
    not computed: 2 (S - 1) B perturbed copies in ceil(2 (S - 1) B / batch_size) forward passes
    (for S = 1 the score is 0). The default objective of the tuner.

    Reference: the MoRF/LeRF curves of W. Samek et al., IEEE TNNLS 28(11), 2017; their difference
    as in S. Blücher, J. Vielhaben, N. Strodthoff, "Decoupling pixel flipping and occlusion strategy
    for consistent XAI benchmarks", TMLR 2024.
    """

    direction = "maximize"
    uses_reference = False  # so callers need not compute p(x) for it

    def evaluate(
        self, inputs: Tensor, targets: Tensor, attributions: Tensor, *, reference: Tensor | None = None
    ) -> Tensor:
        """AbPC per sample, (B,). ``reference`` is accepted for a uniform API and not needed."""
        inputs, targets, attributions, layout = self._prepare(inputs, targets, attributions)
        self._check_reference(reference, inputs)
        steps = torch.arange(1, self.n_steps)
        morf, lerf = self._curves(inputs, targets, attributions, layout, (True, False), steps, with_reference=False)
        return (lerf - morf).sum(1) / self.n_steps
