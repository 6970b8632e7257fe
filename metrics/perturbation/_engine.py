"""The batched perturbation engine shared by the model-based metrics.

Every model-based metric here asks one question many times: "what is the target's score when the
features in this mask take the baseline?". :func:`masked_scores` answers it for N (sample, mask)
rows at once: it builds the perturbed copies chunk by chunk (``batch_size`` rows per forward pass)
on the model's device, under ``torch.inference_mode()``, so no Python loop runs over samples.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .._base import Layout, Metric, check_inputs, layout_of
from ._baselines import BASELINES, DEFAULT_BASELINE, Baseline, make_baseline
from ._road import road_baseline

ProbFn = Callable[[Tensor], Tensor]

#: Rows per forward pass. Measured on CPU with a ResNet-50 at 224x224 (benchmarks/metric_speed.py
#: --batch-sizes, 16-core CPU): 8 was fastest; larger stacks were slower, not faster.
DEFAULT_BATCH_SIZE = 8


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without either)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def softmax(outputs: Tensor) -> Tensor:
    """Default score: the softmax probability of every class, (N, classes)."""
    return torch.softmax(outputs, dim=-1)


def feature_ids(layout: Layout, patch_size: int | tuple[int, ...]) -> Tensor:
    """Feature index of every position, (n_positions,): positions grouped into patches.

    Patches tile the positions from the top-left; where ``patch_size`` does not divide the size,
    the last patch in that direction is smaller.
    """
    sizes = layout.positions
    patch = (patch_size,) * len(sizes) if isinstance(patch_size, int) else tuple(patch_size)
    if len(patch) != len(sizes) or any(p < 1 or p > s for p, s in zip(patch, sizes)):
        raise ValueError(
            f"patch_size {patch_size} does not fit feature positions of shape {sizes}: give one "
            f"positive int or a tuple of {len(sizes)} ints no larger than {sizes}."
        )
    grid = torch.meshgrid(*[torch.arange(s) // p for s, p in zip(sizes, patch)], indexing="ij")
    counts = [math.ceil(s / p) for s, p in zip(sizes, patch)]
    ids = torch.zeros(sizes, dtype=torch.long)
    for coord, count in zip(grid, counts):
        ids = ids * count + coord
    return ids.flatten()


def feature_relevance(position_rel: Tensor, ids: Tensor) -> Tensor:
    """Relevance per feature, (B, n_features): position relevance summed within each patch."""
    n_features = int(ids.max()) + 1
    out = position_rel.new_zeros(len(position_rel), n_features)
    return out.index_add_(1, ids.to(position_rel.device), position_rel)


def masked_scores(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    baseline: Tensor | Callable[[Tensor, Tensor], Tensor],
    layout: Layout,
    rows: Tensor,
    masks: Tensor,
    prob_fn: ProbFn,
    batch_size: int,
) -> Tensor:
    """Target scores of N perturbed copies, (N,), in ``ceil(N / batch_size)`` forward passes.

    Row n is sample ``rows[n]`` with the positions where ``masks[n]`` (N, n_positions) is True
    replaced by the baseline. A mask of all False gives the unperturbed score. A baseline that depends on the
    mask (ROAD's imputation) is a function ``(inputs_chunk, mask_chunk) -> perturbed_chunk``. A negative token id
    is padding and stays as it is (a text model's attention mask is read from it).
    """
    full_baseline = baseline.expand_as(inputs) if isinstance(baseline, Tensor) else inputs
    out = []
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            index = rows[start : start + batch_size]
            mask = masks[start : start + batch_size].view(len(index), *layout.mask_shape)
            if not inputs.is_floating_point():
                mask = mask & (inputs[index] >= 0)
            if isinstance(baseline, Tensor):
                perturbed = torch.where(mask, full_baseline[index], inputs[index])
            else:
                perturbed = baseline(inputs[index], mask)
            scores = prob_fn(model(perturbed))
            out.append(scores.gather(1, targets[index, None]).squeeze(1).float())
    return torch.cat(out) if out else inputs.new_zeros(0, dtype=torch.float)


class PerturbationMetric(Metric):
    """Base of the metrics that perturb inputs and read the model's target score.

    Holds the model, the baseline, the score function and the batch size; prepares the (checked,
    on-device) tensors; computes the unperturbed ``reference`` scores p(x), which a caller that
    scores many attributions of the same inputs can compute once and pass as ``reference=``.

    The shared options are this constructor's keyword-only arguments (:data:`COMMON_OPTIONS`); a metric takes
    its own settings (its ``SETTINGS``) and passes these on as ``**common``. A keyword that is neither the
    metric's own nor a shared option is refused.
    """

    model: nn.Module
    uses_reference = True  # evaluate(..., reference=self.reference(x, y)) reuses p(x) computed once

    def __init__(
        self,
        model: nn.Module,
        *,
        baseline: Baseline = DEFAULT_BASELINE,
        prob_fn: ProbFn | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        blur_sigma: float = 5.0,
        baseline_seed: int = 0,
        **settings: Any,
    ) -> None:
        unknown = [name for name in settings if name not in type(self).SETTINGS]
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
        if isinstance(baseline, str) and baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, a number or a tensor; got {baseline!r}.")
        if isinstance(baseline, bool) or not isinstance(baseline, (str, int, float, Tensor)):
            raise ValueError(f"baseline must be one of {BASELINES}, a number or a tensor; got {baseline!r}.")
        if not isinstance(blur_sigma, (int, float)) or isinstance(blur_sigma, bool) or not blur_sigma > 0:
            raise ValueError(f"blur_sigma must be a positive number of pixels; got {blur_sigma!r}.")
        super().__init__(
            model,
            **settings,
            baseline=baseline,
            prob_fn=prob_fn or softmax,
            batch_size=batch_size,
            blur_sigma=blur_sigma,
            baseline_seed=baseline_seed,
        )
        self.baseline = baseline
        self.prob_fn = prob_fn or softmax
        self.batch_size = batch_size
        self.blur_sigma = blur_sigma
        self.baseline_seed = baseline_seed
        self.baseline_data: Tensor | None = None

    def fit_baseline(self, data: Tensor) -> PerturbationMetric:
        """Take the ``"min"``, ``"mean"`` and ``"uniform"`` baselines from ``data`` (``tune()`` passes the study's
        tuned samples), so that every chunk a study scores shares one baseline; without it each call's inputs are
        the data. Returns the metric."""
        self.baseline_data = data.detach()
        return self

    @classmethod
    def accepted_settings(cls) -> frozenset[str]:
        """The metric's own keyword arguments and the shared options (:data:`COMMON_OPTIONS`)."""
        return super().accepted_settings() | frozenset(COMMON_OPTIONS)

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def _prepare(self, inputs: Tensor, targets: Tensor, attributions: Tensor | None = None):
        """Check the arguments, move them to the model's device; returns (inputs, targets, attr, layout)."""
        if attributions is None:
            attributions = (
                torch.zeros(inputs.shape, dtype=torch.float, device=inputs.device)
                if isinstance(inputs, Tensor)
                else inputs
            )
        targets = check_inputs(inputs, targets, attributions)
        layout = layout_of(inputs)
        if self.model.training and any(
            isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)) for m in self.model.modules()
        ):
            warnings.warn(
                "the model is in training mode, so batch norm / dropout make scores depend on "
                "the batch; call model.eval() first.",
                stacklevel=3,
            )
        device = self.device
        return inputs.to(device), targets.to(device), attributions.to(device), layout

    def _scores(self, inputs: Tensor, targets: Tensor, layout: Layout, rows: Tensor, masks: Tensor) -> Tensor:
        baseline: Tensor | Callable[[Tensor, Tensor], Tensor]
        if isinstance(self.baseline, str) and self.baseline == "road":
            baseline = road_baseline(inputs, self.baseline_seed)
        else:
            baseline = make_baseline(
                inputs, self.baseline, layout, self.blur_sigma, self.baseline_seed, self.baseline_data
            )
        return masked_scores(self.model, inputs, targets, baseline, layout, rows, masks, self.prob_fn, self.batch_size)

    def reference(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """The unperturbed target scores p(x), (B,): one forward pass per ``batch_size`` samples."""
        inputs, targets, _, layout = self._prepare(inputs, targets)
        rows = torch.arange(len(inputs), device=inputs.device)
        masks = torch.zeros(len(inputs), layout.n_positions, dtype=torch.bool, device=inputs.device)
        return self._scores(inputs, targets, layout, rows, masks)

    def _check_reference(self, reference: Tensor | None, inputs: Tensor) -> Tensor | None:
        if reference is None:
            return None
        reference = torch.as_tensor(reference)
        if reference.shape != (len(inputs),):
            raise ValueError(
                f"reference must be the (B,) scores from .reference(inputs, targets), B = "
                f"{len(inputs)}; got shape {tuple(reference.shape)}."
            )
        return reference.to(inputs.device, torch.float)


#: the options every perturbation metric takes (keyword-only, passed on as ``**common``)
COMMON_OPTIONS: tuple[str, ...] = ("baseline", "prob_fn", "batch_size", "blur_sigma", "baseline_seed")
