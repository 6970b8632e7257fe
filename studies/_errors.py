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


def first_line(exc: BaseException) -> str:
    """Return the first non-empty line of an exception's message (or its type name)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


class ModelImportError(PresetError):
    """A ``module:callable`` model cannot be imported, found, or built."""
