"""Reference explainers that are not LRP (captum), scored with the study's metric for the summary table."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from captum.attr import InputXGradient, IntegratedGradients, Saliency

#: the reference rows, each named with its reference point: IG integrates from the zero input and
#: gradient×input is a first-order Taylor expansion at it; saliency (|gradient|) has none
CAPTUM = {
    "Saliency (captum, no reference)": Saliency,
    "InputXGradient (captum, zero reference)": InputXGradient,
    "IntegratedGradients (captum, zero reference)": IntegratedGradients,
}
#: input values that one IG batch of interpolated inputs may hold on an accelerator: about 64 MiB of float32 inputs
IG_BUDGET = 2**24
#: the same on a CPU, where large batches are slower: 16 steps of 8 photos of 224² took 1.9x as long in batches of 111
#: as in batches of 8 (ResNet-50, 2 threads, ``benchmarks/ig_batch.py``; 2**20 values is 6 such photos)
IG_CPU_BUDGET = 2**20


def ig_settings(inputs: torch.Tensor, n_steps: int | None = None) -> dict[str, int]:
    """IntegratedGradients' ``n_steps`` (where not given) and ``internal_batch_size`` for these inputs: 32 steps on
    small inputs, 16 on large ones (a 224² photo, where each step is a full forward and backward pass of a large
    model and the Riemann sum's error is already small next to the metric's noise), and as many interpolated inputs
    per batch as the device's budget (:data:`IG_BUDGET`, :data:`IG_CPU_BUDGET`) allows, never fewer than the inputs
    (captum's own minimum)."""
    features = max(1, inputs[0].numel()) if len(inputs) else 1
    if n_steps is None:
        n_steps = 32 if features <= 16_384 else 16
    budget = IG_CPU_BUDGET if inputs.device.type == "cpu" else IG_BUDGET
    n_inputs = max(1, len(inputs))
    return {"n_steps": n_steps, "internal_batch_size": max(n_inputs, min(n_steps * n_inputs, budget // features))}


#: IntegratedGradients' step counts tried, fewest first, and the completeness error they must stay under: a share of
#: the mean |f(x) - f(reference)| that IG distributes over the features
IG_STEPS = (8, 16, 32, 64)
IG_TOLERANCE = 0.01


@dataclass(frozen=True)
class StepChoice:
    """The step count :func:`choose_ig_steps` chose, its mean completeness error relative to the mean output gap,
    and the seconds of one gradient per sample it measured."""

    n_steps: int
    relative_error: float
    gradient_seconds: float


def choose_ig_steps(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> StepChoice:
    """The fewest of :data:`IG_STEPS` whose mean completeness error (captum's convergence delta: the attributions'
    sum minus f(x) - f(0)) is at most :data:`IG_TOLERANCE` of the mean |f(x) - f(0)| on ``inputs`` (the first
    batch), the most steps where none is; f is the model's target output."""
    ig = IntegratedGradients(model)
    with torch.no_grad():
        gap = (model(inputs) - model(torch.zeros_like(inputs))).gather(1, targets[:, None]).abs().mean()
    error, seconds = math.inf, 0.0
    for n_steps in IG_STEPS:
        began = time.perf_counter()
        _, delta = ig.attribute(
            inputs.detach().clone().requires_grad_(True),
            target=targets,
            n_steps=n_steps,
            internal_batch_size=ig_settings(inputs, n_steps)["internal_batch_size"],
            return_convergence_delta=True,
        )
        seconds = (time.perf_counter() - began) / (n_steps * len(inputs))
        error = float(delta.abs().mean() / gap) if gap > 0 else float(delta.abs().mean())
        if error <= IG_TOLERANCE:
            return StepChoice(n_steps, error, seconds)
    return StepChoice(IG_STEPS[-1], error, seconds)


class CaptumExplainer:
    """A captum attribution method with this package's ``attribute(inputs, targets)``."""

    def __init__(self, method, n_steps: int | None = None):
        self.method, self.n_steps = method, n_steps

    def attribute(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        kwargs: dict = {}
        if isinstance(self.method, IntegratedGradients):
            kwargs = ig_settings(inputs, self.n_steps)
        if isinstance(self.method, Saliency):
            kwargs["abs"] = True
        inputs = inputs.detach().clone().requires_grad_(True)
        return self.method.attribute(inputs, target=targets, **kwargs).detach()

    def settings(self) -> dict[str, str | int]:
        steps = {"n_steps": self.n_steps} if isinstance(self.method, IntegratedGradients) and self.n_steps else {}
        return {"method": type(self.method).__name__, **steps}


def captum_explainers(model: torch.nn.Module, ig_steps: int | None = None) -> dict[str, CaptumExplainer]:
    """The reference rows' explainers by their table names; IntegratedGradients with ``ig_steps`` (named in its row;
    None: :func:`ig_settings`' choice by input size)."""
    rows = {}
    for name, cls in CAPTUM.items():
        if cls is IntegratedGradients and ig_steps is not None:
            rows[f"{name[:-1]}, {ig_steps} steps)"] = CaptumExplainer(cls(model), ig_steps)
        else:
            rows[name] = CaptumExplainer(cls(model))
    return rows
