"""Complexity metrics: how concentrated an attribution is (Gini sparseness, entropy complexity); no forward pass."""

from ._entropy import Complexity
from ._gini import Sparseness

__all__ = ["Complexity", "Sparseness"]
