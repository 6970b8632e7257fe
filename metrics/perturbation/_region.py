"""Region perturbation (pixel flipping): the curves behind MoRF, LeRF and AbPC.

Features (pixel positions or ``patch_size`` patches; token positions for text) are ranked by
their relevance R_f (summed over channels and over the patch). In ``n_steps`` = S equal steps
the next ``F / S`` features in that order take the baseline, cumulatively, so after step k the
first m_k = floor(k F / S) features are perturbed and after step S all of them are. The curve is
p(x^(k)), k = 1..S, the target's score (softmax probability by default) after k steps.

Reference: W. Samek, A. Binder, G. Montavon, S. Lapuschkin, K.-R. Müller, "Evaluating the
visualization of what a deep neural network has learned", IEEE TNNLS 28(11), 2017 (region
perturbation, AOPC); S. Bach et al., "On pixel-wise explanations for non-linear classifier
decisions by layer-wise relevance propagation", PLoS ONE 10(7), 2015 (pixel flipping).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .._base import Layout, position_relevance
from ._engine import PerturbationMetric, feature_ids, feature_relevance

#: the perturbation steps of a region metric built without ``n_steps``
DEFAULT_STEPS = 10


class RegionPerturbation(PerturbationMetric):
    """Shared machinery of MoRF, LeRF and AbPC (not registered as a metric itself).

    Args:
        model: the classifier; its device is used for all work.
        n_steps: S, the number of equal perturbation steps (at most the number of features).
        patch_size: features are patches of this many positions per dimension (int or tuple).

    Shared options (keyword-only, :data:`metrics.perturbation._engine.COMMON_OPTIONS`):
        baseline: what a removed feature becomes: ``"zero"``, ``"min"`` (the data's lower bound per channel:
            black for images), ``"mean"`` (the data's mean per channel), ``"blur"``, ``"uniform"`` (seeded noise),
            ``"road"`` (ROAD's noisy linear imputation of images, Rong et al. 2022), a number (e.g. a pad / mask
            token id for token-id inputs) or a tensor (see :func:`metrics.perturbation._engine.make_baseline`).
            The choice decides rankings: ``"zero"`` is the reference point of gradient×input and of
            Integrated Gradients with a zero reference, and favours them.
        prob_fn: maps model outputs (N, classes) to scores; default softmax probabilities.
        batch_size: perturbed copies per forward pass (see ``DEFAULT_BATCH_SIZE``).
        blur_sigma: Gaussian sigma in pixels for ``baseline="blur"``.
        baseline_seed: seed of the noise of ``baseline="uniform"`` and ``baseline="road"``.
    """

    most_relevant_first = True
    SETTINGS = ("n_steps", "patch_size")

    def __init__(
        self,
        model: nn.Module,
        *,
        n_steps: int = DEFAULT_STEPS,
        patch_size: int | tuple[int, ...] = 1,
        **common: Any,
    ) -> None:
        if not isinstance(n_steps, int) or n_steps < 1:
            raise ValueError(f"n_steps must be a positive int; got {n_steps!r}.")
        super().__init__(
            model,
            n_steps=n_steps,
            patch_size=patch_size,
            **common,
        )
        self.n_steps = n_steps
        self.patch_size = patch_size

    def _ranks(self, attributions: Tensor, layout: Layout, most_relevant_first: bool) -> tuple[Tensor, int]:
        """Rank of every position's feature in the perturbation order, (B, n_positions), and F."""
        ids = feature_ids(layout, self.patch_size).to(attributions.device)
        relevance = feature_relevance(position_relevance(attributions, layout), ids)
        n_features = relevance.shape[1]
        if self.n_steps > n_features:
            raise ValueError(
                f"n_steps={self.n_steps} is larger than the number of features ({n_features} with "
                f"patch_size={self.patch_size}); use n_steps <= {n_features} or a smaller patch_size."
            )
        order = torch.argsort(relevance, dim=1, descending=most_relevant_first, stable=True)
        positions = torch.arange(n_features, device=order.device).expand_as(order)
        rank = torch.empty_like(order).scatter_(1, order, positions)
        return rank[:, ids], n_features

    def _step_masks(self, rank: Tensor, n_features: int, steps: Tensor) -> tuple[Tensor, Tensor]:
        """Rows and masks for the given steps, step-major: row k * B + b is sample b after steps[k]."""
        removed = steps * n_features // self.n_steps
        masks = rank[None] < removed.to(rank.device)[:, None, None]
        rows = torch.arange(len(rank), device=rank.device).repeat(len(steps))
        return rows, masks.reshape(-1, rank.shape[1])

    def _curves(
        self,
        inputs: Tensor,
        targets: Tensor,
        attributions: Tensor,
        layout: Layout,
        orders: tuple[bool, ...],
        steps: Tensor,
        with_reference: bool,
    ) -> list[Tensor]:
        """Scores (B, len(steps)) for each order, plus p(x) if ``with_reference``, in one batched run."""
        parts = []
        for most_relevant_first in orders:
            rank, n_features = self._ranks(attributions, layout, most_relevant_first)
            parts.append(self._step_masks(rank, n_features, steps))
        if with_reference:
            rows = torch.arange(len(inputs), device=inputs.device)
            parts.append((rows, torch.zeros(len(inputs), layout.n_positions, dtype=torch.bool, device=inputs.device)))
        rows = torch.cat([r for r, _ in parts])
        masks = torch.cat([m for _, m in parts])
        scores = self._scores(inputs, targets, layout, rows, masks)
        batch, n = len(inputs), len(steps) * len(inputs)
        curves = [scores[i * n : (i + 1) * n].view(len(steps), batch).T for i in range(len(orders))]
        return curves + ([scores[-batch:]] if with_reference else [])

    def curve(self, inputs: Tensor, targets: Tensor, attributions: Tensor) -> Tensor:
        """The perturbation curve p(x^(k)), k = 1..S, shape (B, S), in this metric's order."""
        inputs, targets, attributions, layout = self._prepare(inputs, targets, attributions)
        steps = torch.arange(1, self.n_steps + 1)
        return self._curves(
            inputs, targets, attributions, layout, (self.most_relevant_first,), steps, with_reference=False
        )[0]

    def _aopc(self, inputs: Tensor, targets: Tensor, attributions: Tensor, reference: Tensor | None) -> Tensor:
        """AOPC = 1/S sum_{k=1..S} p(x) - p(x^(k)) in this metric's order, (B,)."""
        inputs, targets, attributions, layout = self._prepare(inputs, targets, attributions)
        reference = self._check_reference(reference, inputs)
        steps = torch.arange(1, self.n_steps + 1)
        out = self._curves(
            inputs, targets, attributions, layout, (self.most_relevant_first,), steps, with_reference=reference is None
        )
        curve, reference = out[0], (out[1] if reference is None else reference)
        return (reference[:, None] - curve).mean(1)
