"""Reference explainers that are not LRP (captum), scored with the study's metric for the summary table."""

from __future__ import annotations

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


def ig_settings(inputs: torch.Tensor) -> dict[str, int]:
    """IntegratedGradients' ``n_steps`` and ``internal_batch_size`` for these inputs: 32 steps on small inputs,
    16 on large ones (a 224² photo, where each step is a full forward and backward pass of a large model and the
    Riemann sum's error is already small next to the metric's noise), and as many interpolated inputs per batch as
    the device's budget (:data:`IG_BUDGET`, :data:`IG_CPU_BUDGET`) allows, never fewer than the inputs (captum's
    own minimum)."""
    features = max(1, inputs[0].numel()) if len(inputs) else 1
    n_steps = 32 if features <= 16_384 else 16
    budget = IG_CPU_BUDGET if inputs.device.type == "cpu" else IG_BUDGET
    n_inputs = max(1, len(inputs))
    return {"n_steps": n_steps, "internal_batch_size": max(n_inputs, min(n_steps * n_inputs, budget // features))}


class CaptumExplainer:
    """A captum attribution method with this package's ``attribute(inputs, targets)``."""

    def __init__(self, method):
        self.method = method

    def attribute(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        kwargs: dict = {}
        if isinstance(self.method, IntegratedGradients):
            kwargs = ig_settings(inputs)
        if isinstance(self.method, Saliency):
            kwargs["abs"] = True
        inputs = inputs.detach().clone().requires_grad_(True)
        return self.method.attribute(inputs, target=targets, **kwargs).detach()

    def settings(self) -> dict[str, str]:
        return {"method": type(self.method).__name__}


def captum_explainers(model: torch.nn.Module) -> dict[str, CaptumExplainer]:
    """The reference rows' explainers by their table names."""
    return {name: CaptumExplainer(cls(model)) for name, cls in CAPTUM.items()}
