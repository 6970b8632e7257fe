"""IROF: iterative removal of features (superpixels), Rieger & Hansen 2020."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from skimage.segmentation import slic
from torch import Tensor, nn

from .._base import position_relevance
from .._registry import register_metric
from ._engine import PerturbationMetric

MIN_SEGMENTS, MAX_SEGMENTS = 4, 100
AUTO_SEGMENTS = f"auto: H*W // 16, between {MIN_SEGMENTS} and {MAX_SEGMENTS}"


@register_metric("irof")
class IROF(PerturbationMetric):
    """Area over the curve of the normalised target score as superpixels are removed. Higher is better.

    Each image is split into superpixels by SLIC (``n_segments`` asked for; default from the input size, see
    :meth:`segments_for`) (scikit-image; any number of channels; each image is
    min-max scaled to [0, 1] for the segmentation only, without Lab conversion: on normalised or
    noisy RGB the Lab distances swamp ``compactness`` and SLIC collapses to one segment). Its n segments
    are ranked by their mean relevance (summed over channels) and removed, most relevant first, one per step, taking the
    baseline (default the data's per-channel mean). With p the target's softmax probability
    and x^(k) the image after k removals, y_k = p(x^(k)) / p(x) (y_0 = 1), and

        IROF(x) = 1 - trapezoid(y_0 .. y_n over [0, 1])  =  1 - 1/n sum_{k=1..n} (y_{k-1} + y_k) / 2.

    SLIC runs per image on the CPU; all n_1 + ... + n_B (+ B for p(x)) perturbed copies go through
    the model in ceil(rows / batch_size) forward passes. Segments depend only on the inputs, so a
    caller scoring many attributions can compute :meth:`segment` once and pass ``segments=``.

    Reference: L. Rieger, L. K. Hansen, "IROF: a low resource evaluation metric for explanation
    methods", ICLR 2020 workshop AI for Affordable Healthcare.
    """

    direction = "maximize"

    SETTINGS = ("n_segments", "compactness")

    def __init__(
        self,
        model: nn.Module,
        *,
        n_segments: int | None = None,
        compactness: float = 1.0,
        **common: Any,
    ) -> None:
        if n_segments is not None and (not isinstance(n_segments, int) or n_segments < 2):
            raise ValueError(f"n_segments must be an int >= 2 or None (from the input size); got {n_segments!r}.")
        super().__init__(
            model,
            n_segments=n_segments,
            compactness=compactness,
            **{"baseline": "mean", **common},  # IROF's default baseline is the mean, the others' zero
        )
        self.n_segments, self.compactness = n_segments, compactness
        if n_segments is None:  # settings() says how the number is chosen, not a number it is not
            self._settings["n_segments"] = AUTO_SEGMENTS

    def segments_for(self, height: int, width: int) -> int:
        """The number of SLIC segments asked for on ``height`` × ``width`` images: ``n_segments``, or with
        None one per 4 × 4 pixels, between 4 and 100 (16 on 16×16 digits, 100 on 224×224 photos): a fixed
        100 on a small image asks SLIC for segments of one or two pixels, and it falls back to a grid."""
        if self.n_segments is not None:
            return self.n_segments
        return max(MIN_SEGMENTS, min(MAX_SEGMENTS, height * width // 16))

    def segment(self, inputs: Tensor) -> Tensor:
        """SLIC superpixel labels 0..n_b-1 per image, a LongTensor (B, H, W) on the inputs' device."""
        if inputs.ndim != 4 or not inputs.is_floating_point():
            raise ValueError(
                f"IROF needs float images (B, C, H, W); got shape {tuple(inputs.shape)}, dtype {inputs.dtype}."
            )
        pixels = inputs.detach().float().cpu()
        low = pixels.flatten(1).amin(1).view(-1, 1, 1, 1)
        high = pixels.flatten(1).amax(1).view(-1, 1, 1, 1)
        images = ((pixels - low) / (high - low).clamp_min(1e-12)).permute(0, 2, 3, 1).double().numpy()
        labels = []
        for image in images:  # SLIC is per image; the forward passes below are batched
            seg = slic(
                image if image.shape[-1] > 1 else image[..., 0],
                n_segments=self.segments_for(*image.shape[:2]),
                compactness=self.compactness,
                start_label=0,
                convert2lab=False,
                channel_axis=-1 if image.shape[-1] > 1 else None,
            )
            labels.append(np.unique(seg, return_inverse=True)[1].reshape(seg.shape))
        return torch.from_numpy(np.stack(labels)).long().to(inputs.device)

    def evaluate(
        self,
        inputs: Tensor,
        targets: Tensor,
        attributions: Tensor,
        *,
        reference: Tensor | None = None,
        segments: Tensor | None = None,
    ) -> Tensor:
        """IROF per sample, (B,). ``reference``: p(x) from :meth:`reference`; ``segments``: from
        :meth:`segment`, both optional and reusable across attributions of the same inputs."""
        inputs, targets, attributions, layout = self._prepare(inputs, targets, attributions)
        if inputs.ndim != 4:
            raise ValueError(f"IROF needs images (B, C, H, W); got shape {tuple(inputs.shape)}.")
        reference = self._check_reference(reference, inputs)
        segments = self.segment(inputs) if segments is None else segments.to(inputs.device).long()
        if segments.shape != (len(inputs), *layout.positions):
            raise ValueError(
                f"segments must be (B, H, W) = {(len(inputs), *layout.positions)} labels from "
                f".segment(inputs); got {tuple(segments.shape)}."
            )
        batch, device = len(inputs), inputs.device
        labels = segments.flatten(1)  # (B, P)
        counts = labels.max(1).values + 1  # n_b segments per image
        n_max = int(counts.max())
        relevance = position_relevance(attributions, layout).double()
        seg_sum = relevance.new_zeros(batch, n_max).scatter_add_(1, labels, relevance)
        seg_size = relevance.new_zeros(batch, n_max).scatter_add_(1, labels, torch.ones_like(relevance))
        seg_mean = torch.where(seg_size > 0, seg_sum / seg_size.clamp_min(1), -torch.inf)
        order = torch.argsort(seg_mean, dim=1, descending=True, stable=True)
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(n_max, device=device).expand_as(order))
        position_rank = rank.gather(1, labels)  # (B, P)
        # rows: for every image b and step k = 1..n_b, the image with its k best segments removed
        steps = torch.arange(1, n_max + 1, device=device)
        valid = steps[None] <= counts[:, None]  # (B, n_max)
        sample, column = valid.nonzero(as_tuple=True)  # sample-major, steps ascending
        step = column + 1
        masks = position_rank[sample] < step[:, None]
        rows = sample
        if reference is None:
            rows = torch.cat([rows, torch.arange(batch, device=device)])
            masks = torch.cat([masks, masks.new_zeros(batch, masks.shape[1])])
        scores = self._scores(inputs, targets, layout, rows, masks).double()
        if reference is None:
            scores, reference = scores[:-batch], scores[-batch:]
        y = scores / reference.double()[sample]
        previous = torch.where(step == 1, torch.ones_like(y), torch.cat([y.new_ones(1), y[:-1]]))
        area = torch.zeros(batch, dtype=torch.double, device=device).index_add_(
            0, sample, (previous + y) / 2 / counts[sample].double()
        )
        return (1 - area).float()
