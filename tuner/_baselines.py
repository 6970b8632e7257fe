"""Reference scores of non-LRP explainers (captum) with the study's metric, for the summary table."""

from __future__ import annotations

import torch
from captum.attr import InputXGradient, IntegratedGradients, Saliency

from ._objective import Objective

#: the reference rows, each named with its reference point: IG integrates from the zero input and
#: gradient×input is a first-order Taylor expansion at it; saliency (|gradient|) has none
CAPTUM = {
    "Saliency (captum, no reference)": Saliency,
    "InputXGradient (captum, zero reference)": InputXGradient,
    "IntegratedGradients (captum, zero reference)": IntegratedGradients,
}


class _CaptumExplainer:
    def __init__(self, method):
        self.method = method

    def attribute(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        kwargs = {"n_steps": 32, "internal_batch_size": 64} if isinstance(self.method, IntegratedGradients) else {}
        if isinstance(self.method, Saliency):
            kwargs["abs"] = True
        inputs = inputs.detach().clone().requires_grad_(True)
        return self.method.attribute(inputs, target=targets, **kwargs).detach()


def captum_explainers(model: torch.nn.Module) -> dict[str, _CaptumExplainer]:
    """The reference rows' explainers on ``model``, by row name."""
    return {name: _CaptumExplainer(cls(model)) for name, cls in CAPTUM.items()}


def captum_scores(objective: Objective, model: torch.nn.Module) -> dict[str, float | tuple]:
    """Mean score of each captum explainer on the objective's samples (a tuple with several metrics)."""
    scores = {}
    for name, cls in CAPTUM.items():
        means = objective.evaluate(_CaptumExplainer(cls(model))).mean(-1)
        scores[name] = float(means) if means.ndim == 0 else tuple(means.tolist())
    return scores
