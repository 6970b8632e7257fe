"""Held-out scores: each configuration attributed once on the held-out samples and scored by the objective, its
attributions kept so that the robustness panel (:mod:`tuner.evidence.panel._panel`) scores the same maps."""

from __future__ import annotations

from typing import Any

import torch

from explainers import evaluation_mode

from ..search._objective import TrialObjective, configuration_key, per_input_feature


class HeldOutScorer:
    """Per-sample held-out objective scores of configurations, and their attributions, cached by configuration
    (class and settings: a best equal to its default is not scored twice)."""

    def __init__(self, holdout: TrialObjective):
        self.holdout = holdout
        self.model = next(iter(holdout.space.variants.values())).model
        self._scores: dict[str, torch.Tensor] = {}
        self._attributions: dict[str, torch.Tensor] = {}
        #: the metrics' unperturbed scores of the held-out samples, the same for every configuration: computed once
        self._references: list[torch.Tensor | None] | None = None

    def scores(self, explainer: Any) -> torch.Tensor:
        """(B,) with one objective metric, (metrics, B) with several."""
        self._score(explainer)
        return self._scores[configuration_key(explainer)]

    def attributions(self, explainer: Any) -> torch.Tensor:
        """The configuration's attributions of the held-out samples, shaped like the inputs, on the CPU."""
        self._score(explainer)
        return self._attributions[configuration_key(explainer)]

    def _score(self, explainer: Any) -> None:
        key = configuration_key(explainer)
        if key in self._scores:
            return
        holdout, rows, maps, start = self.holdout, [], [], 0
        with evaluation_mode(self.model):
            if self._references is None:
                self._references = [holdout._reference(metric) for metric in holdout.metrics]
            pairs = list(zip(holdout.metrics, self._references))
            for x, y in holdout._chunks():
                attributions = per_input_feature(explainer.attribute(x, y), x).detach()
                rows.append(
                    torch.stack([holdout._evaluate(m, reference, x, y, attributions, start) for m, reference in pairs])
                )
                maps.append(attributions.cpu())
                start += len(x)
        scores = torch.cat(rows, dim=1)
        self._scores[key] = scores[0] if len(holdout.metrics) == 1 else scores
        self._attributions[key] = torch.cat(maps)
