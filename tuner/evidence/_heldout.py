"""Held-out scores: each configuration attributed once on the held-out samples and scored by the objective, its
attributions kept so that the robustness panel (:mod:`tuner.evidence.panel._panel`) scores the same maps."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from explainers import LRPBase, evaluation_mode
from explainers.engine import attribute_many

from ..search._objective import TrialObjective, configuration_key, per_input_feature


class HeldOutScorer:
    """Per-sample held-out objective scores of configurations, and their attributions, cached by configuration
    (class and settings: a best equal to its default is not scored twice)."""

    def __init__(self, holdout: TrialObjective, companions: Callable[[], Iterable[Any]] | None = None):
        self.holdout = holdout
        #: the configurations worth scoring beside any one of them (a variant's default and best): those of its class
        #: are scored with it, sharing each chunk's forward pass
        self.companions = companions
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
        group = {key: explainer}
        for companion in self.companions() if self.companions is not None else ():
            other = configuration_key(companion)
            if type(companion) is type(explainer) and other not in self._scores:
                group.setdefault(other, companion)
        self._score_together(list(group.values()))

    def _score_together(self, explainers: list[Any]) -> None:
        holdout, start = self.holdout, 0
        rows: list[list[torch.Tensor]] = [[] for _ in explainers]
        maps: list[list[torch.Tensor]] = [[] for _ in explainers]
        with evaluation_mode(self.model):
            if self._references is None:
                self._references = [holdout._reference(metric) for metric in holdout.metrics]
            pairs = list(zip(holdout.metrics, self._references))
            for x, y in holdout._chunks():
                for index, relevance in enumerate(_attribute_together(explainers, x, y)):
                    attributions = per_input_feature(relevance, x).detach()
                    scores = [holdout._evaluate(m, reference, x, y, attributions, start) for m, reference in pairs]
                    rows[index].append(torch.stack(scores))
                    maps[index].append(attributions.cpu())
                start += len(x)
        for explainer, explainer_rows, explainer_maps in zip(explainers, rows, maps):
            key = configuration_key(explainer)
            table = torch.cat(explainer_rows, dim=1)
            self._scores[key] = table[0] if len(holdout.metrics) == 1 else table
            self._attributions[key] = torch.cat(explainer_maps)


def _attribute_together(explainers: list[Any], x: torch.Tensor, y: torch.Tensor) -> list[Any]:
    """Each explainer's attribution of ``x``: from one shared forward pass where they are several configurations of
    an explainer class that can share it."""
    if len(explainers) > 1 and isinstance(explainers[0], LRPBase):
        return attribute_many(explainers, x, y)
    return [explainer.attribute(x, y) for explainer in explainers]
