"""Localisation metrics: how well a map's relevance falls on evidence that masks mark (relevance mass and rank
accuracy, the pointing game); no forward pass."""

from ._masks import position_masks
from ._mass import RelevanceMassAccuracy
from ._metric import LocalisationMetric
from ._pointing import PointingGame
from ._rank import RelevanceRankAccuracy

__all__ = ["LocalisationMetric", "PointingGame", "RelevanceMassAccuracy", "RelevanceRankAccuracy", "position_masks"]
