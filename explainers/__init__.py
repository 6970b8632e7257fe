"""LRP explainers on zennit: LRPBase and its variants, with automatic canonizers and layer attribution.

Every explainer registers itself by a short name (:data:`EXPLAINERS`, :func:`get_explainer`); a configuration
is saved and loaded as JSON here (:func:`save_config`, :func:`load_explainer`).
"""

from ._attributors import InputGradient, LayerGradient, ModelInputError
from ._base import COMMON_OPTIONS, LRPBase
from ._checks import NonFiniteAttributionError
from ._config import explainer_config, load_explainer, save_config
from ._conservation import conservation_model, relevance_sums
from ._guard import UnsupportedModelError, check_supported
from ._layerwise import GroupRule, LRPLayerwise
from ._model_state import evaluation_mode
from ._registry import DEFAULT_EXPLAINERS, EXPLAINERS, get_explainer, register_explainer
from ._tunable import Tunable
from ._variants import LRPEpsilonAlpha2Beta1, LRPEpsilonGammaBox, LRPEpsilonPlus, LRPUniformEpsilon
from .canonizers import default_canonizers, register_canonizer

__all__ = [
    "COMMON_OPTIONS",
    "DEFAULT_EXPLAINERS",
    "EXPLAINERS",
    "GroupRule",
    "InputGradient",
    "LRPBase",
    "LRPEpsilonAlpha2Beta1",
    "LRPEpsilonGammaBox",
    "LRPEpsilonPlus",
    "LRPLayerwise",
    "LRPUniformEpsilon",
    "LayerGradient",
    "ModelInputError",
    "NonFiniteAttributionError",
    "Tunable",
    "default_canonizers",
    "explainer_config",
    "get_explainer",
    "load_explainer",
    "register_explainer",
    "save_config",
    "register_canonizer",
    "check_supported",
    "UnsupportedModelError",
    "conservation_model",
    "relevance_sums",
    "evaluation_mode",
]
