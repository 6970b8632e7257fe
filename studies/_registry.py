"""The preset registry: built-ins, presets registered at run time, and entry points (group lrp_tuner.presets)."""

from __future__ import annotations

import difflib
from importlib.metadata import EntryPoint, entry_points

from ._base import Preset
from ._errors import PresetError, UnknownPresetError, first_line
from .presets._digits import DIGITS
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

_PRESETS: dict[str, Preset] = {p.name: p for p in (DIGITS, RESNET50, RESNET18, VGG16)}


def _check(preset: object) -> Preset:
    for attribute in ("name", "load_model", "load_data", "low", "high", "defaults"):
        if not hasattr(preset, attribute):
            raise TypeError(f"{preset!r} is not a Preset: it has no {attribute!r}")
    return preset  # type: ignore[return-value]


def register_preset(preset: Preset, *, overwrite: bool = False) -> Preset:
    """Make `preset` available by its name (for get_preset and the CLI's --model); returns it.

    Example::

        from studies import Preset, bounds_from_normalization, register_preset
        low, high = bounds_from_normalization(mean=[0.5], std=[0.5])
        register_preset(Preset(name="mine", description="my CNN", model=build, data=load, low=low, high=high))

    where ``build(weights, device)`` returns the model and ``load(data_dir, n_samples)`` returns
    ``(inputs, labels or None)``. Packages can instead declare an entry point in the group
    ``lrp_tuner.presets`` that names a Preset or a zero-argument callable returning one.
    """
    _check(preset)
    if preset.name in _PRESETS and _PRESETS[preset.name] is not preset and not overwrite:
        raise ValueError(f"a preset named {preset.name!r} is already registered; pass overwrite=True to replace it")
    _PRESETS[preset.name] = preset
    return preset


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in _PRESETS}


def _load_entry_point(entry_point: EntryPoint) -> Preset:
    try:
        loaded = entry_point.load()
        preset = _check(loaded() if callable(loaded) else loaded)
    except Exception as exc:
        raise PresetError(
            f"preset {entry_point.name!r} from entry point {entry_point.value!r} failed to load "
            f"({type(exc).__name__}: {first_line(exc)})"
        ) from exc
    _PRESETS[entry_point.name] = preset
    return preset


def available_presets() -> list[str]:
    """Return the names of all presets: built-in, registered and installed through entry points."""
    return sorted({*_PRESETS, *_entry_points()})


def registered_preset(name: str) -> Preset | None:
    """The preset registered (or installed through an entry point) as `name`, else None."""
    if name in _PRESETS:
        return _PRESETS[name]
    found = _entry_points().get(name)
    return None if found is None else _load_entry_point(found)


def get_preset(name: str) -> Preset:
    """Return the preset called `name` (registered, installed, or any torchvision classification architecture
    with its DEFAULT weights' preprocessing), or raise UnknownPresetError listing the known names."""
    registered = registered_preset(name)
    if registered is not None:
        return registered
    if name in torchvision_classifiers():
        return torchvision_preset(name, f"torchvision {name} on ImageNet photographs", GENERIC_DEFAULTS)
    close = difflib.get_close_matches(name, [*available_presets(), *torchvision_classifiers()], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownPresetError(
        f"unknown preset {name!r}{hint}; known presets: {', '.join(available_presets())}, and every classification "
        "architecture of torchvision.models, e.g. efficientnet_b0 or vit_b_16, or an import path "
        "package.module:callable or file.py:callable"
    )
