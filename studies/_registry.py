"""The preset registry: built-ins, presets registered at run time, and entry points (group lrp_tuner.presets)."""

from __future__ import annotations

from typing import Any

from registry import Registry

from ._base import Preset
from ._errors import PresetError, UnknownPresetError
from .presets._digits import DIGITS
from .presets._evidence import EVIDENCE
from .presets._text_evidence import TEXT_EVIDENCE
from .presets._torchvision import (
    GENERIC_DEFAULTS,
    RESNET18,
    RESNET50,
    VGG16,
    torchvision_classifiers,
    torchvision_preset,
)

ENTRY_POINT_GROUP = "lrp_tuner.presets"
DEFAULT_PRESET: str = DIGITS.name


def _check(preset: object) -> Preset:
    for attribute in ("name", "load_model", "load_data", "low", "high", "defaults"):
        if not hasattr(preset, attribute):
            raise TypeError(f"{preset!r} is not a Preset: it has no {attribute!r}")
    return preset  # type: ignore[return-value]


def _from_entry_point(loaded: Any) -> Preset:
    """An entry point names a Preset or a zero-argument callable that returns one."""
    return _check(loaded() if callable(loaded) else loaded)


_PRESETS: Registry[Preset] = Registry(
    "preset", ENTRY_POINT_GROUP, check=_check, load=_from_entry_point, load_error=PresetError
)
for _builtin in (DIGITS, EVIDENCE, TEXT_EVIDENCE, RESNET50, RESNET18, VGG16):
    _PRESETS.add(_builtin.name, _builtin)


def register_preset(preset: Preset, *, overwrite: bool = False) -> Preset:
    """Make `preset` available by its name (for get_preset and the CLI's --model); returns it.

    Example::

        from studies import Preset, bounds_from_normalization, register_preset
        low, high = bounds_from_normalization(mean=[0.5], std=[0.5])
        register_preset(Preset(name="mine", description="my CNN", model=build, data=load, low=low, high=high))

    where ``build(weights, device)`` returns the model and ``load(data_dir, n_samples)`` returns
    ``(inputs, labels or None)``, or ``(inputs, labels, masks)`` with masks bool (N, H, W) where the
    evidence is, when the data knows it. Packages can instead declare an entry point in the group
    ``lrp_tuner.presets`` that names a Preset or a zero-argument callable returning one.
    """
    _check(preset)
    return _PRESETS.add(preset.name, preset, overwrite=overwrite)


def available_presets() -> list[str]:
    """Return the names of all presets: built-in, registered and installed through entry points."""
    return sorted(_PRESETS.names())


def registered_preset(name: str) -> Preset | None:
    """The preset registered (or installed through an entry point) as `name`, else None."""
    return _PRESETS.find(name)


def get_preset(name: str) -> Preset:
    """Return the preset called `name` (registered, installed, or any torchvision classification architecture
    with its DEFAULT weights' preprocessing), or raise UnknownPresetError listing the known names."""
    registered = registered_preset(name)
    if registered is not None:
        return registered
    if name in torchvision_classifiers():
        return torchvision_preset(name, f"torchvision {name} on ImageNet photographs", GENERIC_DEFAULTS)
    message = _PRESETS.unknown(name, also=torchvision_classifiers(), valid=available_presets())
    raise UnknownPresetError(
        f"{message}, and every classification architecture of torchvision.models, e.g. efficientnet_b0 or "
        "vit_b_16, or an import path package.module:callable or file.py:callable"
    )
