"""The baselines a perturbation metric gives removed features, and the one default a study uses.

One place decides the default: :data:`DEFAULT_BASELINE` for a metric built on its own, and
:func:`study_baseline` for a study, which gives images a Gaussian blur instead (see its docstring)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .._base import Layout

Baseline = str | int | float | Tensor

#: the named baselines (see :func:`make_baseline`); a number or a tensor is accepted too
BASELINES = ("zero", "min", "mean", "blur", "uniform", "road")


def make_baseline(
    inputs: Tensor,
    baseline: Baseline,
    layout: Layout,
    blur_sigma: float = 5.0,
    baseline_seed: int = 0,
    data: Tensor | None = None,
) -> Tensor:
    """The values perturbed features take, broadcastable to ``inputs``.

    ``"zero"``: 0 (on normalised images, the data's mean colour: the reference point of Integrated Gradients
    with a zero reference and of gradient×input, which this baseline therefore favours); ``"min"``: the data's
    lower bound per channel (black for images); ``"mean"``: the data's mean per channel; ``"blur"``: the
    Gaussian-blurred image (``blur_sigma`` pixels); ``"uniform"``: noise drawn uniformly in the data's range per
    channel from a generator seeded with ``baseline_seed`` on every call (the same noise for every attribution of
    the same inputs); a number (e.g. a pad / mask token id); or a tensor broadcastable to the inputs. The data is
    ``data`` (e.g. a study's samples) or, without it, ``inputs`` (all samples of the call, never one at a time);
    a channel is a dim of ``layout.reduce_dims`` (colour for images, the embedding for (B, L, E)).
    ``"road"`` (ROAD's noisy linear imputation, Rong et al. 2022) depends on the mask, so it is made per chunk
    by the engine (:func:`metrics.perturbation._road.road_impute`), not here.
    """
    if isinstance(baseline, Tensor):
        value = baseline.to(inputs.device, inputs.dtype)
        try:
            torch.broadcast_shapes(value.shape, inputs.shape)
        except RuntimeError:
            raise ValueError(
                f"baseline tensor of shape {tuple(value.shape)} does not broadcast to the inputs {tuple(inputs.shape)}."
            ) from None
        return value
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        if not inputs.is_floating_point() and not isinstance(baseline, int):
            raise ValueError(f"token-id inputs need an int baseline (a pad or mask id); got {baseline!r}.")
        return torch.tensor(baseline, dtype=inputs.dtype, device=inputs.device)
    if baseline == "zero":
        return torch.zeros((), dtype=inputs.dtype, device=inputs.device)
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, a number or a tensor; got {baseline!r}.")
    if not inputs.is_floating_point():
        raise ValueError(
            f"baseline {baseline!r} needs float inputs; for token ids pass the pad or mask token id as an int baseline."
        )
    if baseline == "road":
        raise ValueError(
            "baseline 'road' depends on the mask, so it is no tensor: see metrics.perturbation._road.road_impute."
        )
    if baseline == "blur":
        if inputs.ndim != 4:
            raise ValueError("baseline 'blur' is defined for images (B, C, H, W) only.")
        return gaussian_blur(inputs, blur_sigma)
    source = (inputs if data is None else data).to(inputs.device, inputs.dtype)
    if source.shape[1:] != inputs.shape[1:]:
        raise ValueError(f"baseline data of shape {tuple(source.shape)} does not match inputs {tuple(inputs.shape)}.")
    over = tuple(d for d in range(inputs.ndim) if d not in layout.reduce_dims)  # all but the channel dims
    if baseline == "min":
        return source.amin(dim=over, keepdim=True)
    if baseline == "mean":
        return source.mean(dim=over, keepdim=True)
    low, high = source.amin(dim=over, keepdim=True), source.amax(dim=over, keepdim=True)
    noise = torch.rand(inputs.shape, generator=torch.Generator().manual_seed(baseline_seed), dtype=inputs.dtype)
    return low + (high - low) * noise.to(inputs.device)


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, C, H, W) images with replicate padding."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    out = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


#: the baseline of a perturbation metric built without one: 0, the input's own zero point
DEFAULT_BASELINE = "zero"


def study_baseline(inputs: Tensor) -> dict[str, str | float]:
    """The baseline settings a study uses where the user names none: a Gaussian blur for images (sigma: an eighth
    of the smaller side, between 1 and 5 pixels: 2 on 16×16 digits, 5 on 224×224 photos), else
    :data:`DEFAULT_BASELINE`. Not zero for images: on normalised images 0 is the mean colour, the reference point of
    gradient×input and of Integrated Gradients with a zero reference, so a zero baseline ranks those reference rows
    first; a blur coincides with no reference row's reference point."""
    is_image = inputs.ndim == 4 and inputs.is_floating_point()
    if not is_image:
        return {"baseline": DEFAULT_BASELINE}
    return {"baseline": "blur", "blur_sigma": float(min(5, max(1, min(inputs.shape[2:]) // 8)))}
