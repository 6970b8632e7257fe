"""LRP explainers on zennit: LRPBase and its variants, with automatic canonizers and layer attribution."""
from ._attributors import InputGradient, LayerGradient, ModelInputError
from ._base import LRPBase, NonFiniteAttributionError
from ._canonizers import default_canonizers, register_canonizer
from ._conservation import conservation_model, relevance_sums
from ._guard import UnsupportedModelError, check_supported
from ._layerwise import LRPLayerwise
from ._variants import LRPEpsilonAlpha2Beta1, LRPEpsilonGammaBox, LRPEpsilonPlus, LRPUniformEpsilon

__all__ = [
    "LRPBase",
    "LRPUniformEpsilon",
    "LRPEpsilonGammaBox",
    "LRPEpsilonPlus",
    "LRPEpsilonAlpha2Beta1",
    "LRPLayerwise",
    "InputGradient",
    "LayerGradient",
    "ModelInputError",
    "NonFiniteAttributionError",
    "default_canonizers",
    "register_canonizer",
    "check_supported",
    "UnsupportedModelError",
    "conservation_model",
    "relevance_sums",
]
