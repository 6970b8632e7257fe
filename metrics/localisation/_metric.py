"""``LocalisationMetric``: the shared checks of the metrics that score a map against evidence masks, so each
metric only says how relevance per position and a mask make a score."""

from __future__ import annotations

import abc

from torch import Tensor

from .._base import Metric, check_inputs, layout_of, position_relevance
from ._masks import position_masks


class LocalisationMetric(Metric):
    """Base of the localisation metrics: how well the relevance falls on the evidence a mask marks. Model-free;
    ``evaluate(inputs, targets, attributions, masks=...)`` returns one score per sample, higher is better."""

    direction = "maximize"
    requires_model = False
    uses_masks = True

    def __init__(self) -> None:
        super().__init__(None)

    def evaluate(
        self, inputs: Tensor, targets: Tensor | None, attributions: Tensor, *, masks: Tensor | None = None
    ) -> Tensor:
        """The score per sample, (B,); ``masks`` as :func:`position_masks` takes them; ``targets`` is only
        checked (may be None)."""
        check_inputs(inputs, targets, attributions)
        if masks is None:
            raise ValueError(
                f"{type(self).__name__} scores attributions against evidence masks: pass masks=, one bool mask per "
                "sample, e.g. metric(inputs, targets, attributions, masks=masks)."
            )
        relevance = position_relevance(attributions, layout_of(inputs)).double()
        inside = position_masks(masks, inputs).to(relevance.device)
        return self.score(relevance, inside).float()

    @abc.abstractmethod
    def score(self, relevance: Tensor, inside: Tensor) -> Tensor:
        """The (B,) scores from relevance per position (B, n, float64) and the bool masks (B, n), none empty."""
