"""Presets: a model, its weights, its data, its input bounds and study defaults, by name."""

from ._base import Preset, bounds_from_normalization
from ._choice import model_preset
from ._errors import (
    DataError,
    ModelImportError,
    PresetError,
    UnknownPresetError,
    WeightsError,
    WeightsUnavailableError,
)
from ._registry import DEFAULT_PRESET, ENTRY_POINT_GROUP, available_presets, get_preset, register_preset
from .loading._preprocessing import Preprocessing
from .loading._weights import cache_dir

__all__ = [
    "DEFAULT_PRESET",
    "ENTRY_POINT_GROUP",
    "DataError",
    "ModelImportError",
    "Preset",
    "PresetError",
    "Preprocessing",
    "UnknownPresetError",
    "WeightsError",
    "WeightsUnavailableError",
    "available_presets",
    "bounds_from_normalization",
    "cache_dir",
    "get_preset",
    "model_preset",
    "register_preset",
]
