"""Errors raised by the presets: each carries a one-line message that says what to do."""

from __future__ import annotations


class PresetError(ValueError):
    """Base class of every error a preset raises for bad input."""


class UnknownPresetError(PresetError):
    """No preset is registered under the requested name."""


class WeightsError(PresetError):
    """A weights file is missing, unreadable, or does not match the model's architecture."""


class WeightsUnavailableError(PresetError):
    """Pretrained weights cannot be downloaded and are not cached."""


class DataError(PresetError):
    """A data folder is missing or holds no readable images."""


class ModelImportError(PresetError):
    """A ``module:callable`` model cannot be imported, found, or built."""
