"""What ``--model`` and its options name, as one Preset whose name tells models apart.

``--model`` is a registered preset (``digits``), a torchvision classification architecture
(``efficientnet_b0``), an import path (``package.module:callable``, ``file.py:callable``) or a Hugging Face model
(``hf:PATH_OR_ID``); ``--weights``,
``--input-size``, ``--mean``, ``--std`` and ``--num-classes`` complete it. The preset's name is
``<model>@<weights>`` (plus the overrides), so that two models never share a default study name.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torchvision.models import WeightsEnum

from ._base import Preset
from ._errors import PresetError
from ._import_path import import_path_preset, is_import_path
from ._registry import get_preset, registered_preset
from .loading._preprocessing import Preprocessing
from .presets._hf import HF_PREFIX, hf_preset
from .presets._torchvision import (
    GENERIC_DEFAULTS,
    TORCHVISION_DEFAULTS,
    check_weights,
    default_weights,
    pretrained_weights,
    torchvision_classifiers,
    torchvision_preprocessing,
    torchvision_preset,
)


def model_preset(
    model: str,
    *,
    weights: str | None = None,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    num_classes: int | None = None,
) -> Preset:
    """The preset for ``--model`` with its options; ``load_model()`` builds it with ``weights`` and
    ``load_data()`` preprocesses images for it. Bad input raises a PresetError (one line) before any work.

    Example: ``model_preset("mobilenet_v3_small", weights="none").load_model()``.
    """
    given = any(v is not None for v in (input_size, mean, std))
    if model.startswith(HF_PREFIX):
        if given or num_classes is not None:
            raise PresetError(
                "--input-size, --mean, --std and --num-classes do not apply to a Hugging Face model (hf:)"
            )
        label = model if weights is None else f"{model}@{_weights_tag(weights)}"
        return _bound(hf_preset(model.removeprefix(HF_PREFIX)), weights, label)
    registered = registered_preset(model)
    if registered is not None and model not in TORCHVISION_DEFAULTS:
        if given or num_classes is not None:
            raise PresetError(
                f"--input-size, --mean, --std and --num-classes apply to torchvision architectures and import paths, "
                f"not to the {model!r} preset"
            )
        return _bound(registered, weights, model if weights is None else f"{model}@{_weights_tag(weights)}")
    if is_import_path(model):
        # an import path has no weights to read its preprocessing from: ImageNet's, 224 pixels, unless overridden
        preprocessing = Preprocessing().override(input_size=input_size, mean=mean, std=std)
        preset = import_path_preset(model, GENERIC_DEFAULTS, preprocessing=preprocessing, num_classes=num_classes)
        label = f"{_short_import_path(model)}@{'init' if weights is None else _weights_tag(weights)}"
    elif model in torchvision_classifiers():
        check_weights(model, weights)
        preprocessing = torchvision_preprocessing(model, weights).override(input_size=input_size, mean=mean, std=std)
        defaults = TORCHVISION_DEFAULTS.get(model, GENERIC_DEFAULTS)
        description = f"torchvision {model} ({preprocessing.describe()})"
        preset = torchvision_preset(model, description, defaults, preprocessing=preprocessing, num_classes=num_classes)
        chosen = pretrained_weights(model, weights)
        _check_size(model, preprocessing, chosen or default_weights(model))
        label = f"{model}@{chosen.name if chosen is not None else _weights_tag(str(weights))}"
    else:
        return get_preset(model)  # raises UnknownPresetError, listing the names
    if input_size is not None:
        label += f"-{input_size}px"
    if mean is not None or std is not None:
        label += f"-norm{_digest(repr((preprocessing.mean, preprocessing.std)).encode())}"
    if num_classes is not None:
        label += f"-{num_classes}cls"
    return _bound(preset, weights, label)


def _check_size(arch: str, preprocessing: Preprocessing, weights: WeightsEnum) -> None:
    """The weights' metadata give the smallest input the architecture accepts."""
    height, width = weights.meta.get("min_size", (1, 1))
    if preprocessing.crop < max(height, width):
        raise PresetError(f"{arch} needs inputs of at least {height}x{width} pixels; pass a larger --input-size")


def _bound(preset: Preset, weights: str | None, name: str) -> Preset:
    """``preset`` under ``name``, building its model with ``weights`` unless load_model is given others."""
    loader = preset.model

    def model(asked: str | None, device: torch.device) -> nn.Module:
        return loader(asked if asked is not None else weights, device)

    return dataclasses.replace(preset, name=name, model=model)


def _weights_tag(weights: str) -> str:
    """``none``, a weights enum name, or a state dict's file stem and content digest (two checkpoints
    called best.pt differ)."""
    path = Path(weights).expanduser()
    if weights.lower() == "none" or not path.is_file():
        return weights.lower() if weights.lower() in ("none", "default") else weights
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(partial(handle.read, 1 << 20), b""):
            digest.update(block)
    return f"{path.stem}-{digest.hexdigest()[:8]}"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:6]


def _short_import_path(spec: str) -> str:
    """``file.py:build`` for a file path (the folder left out), the import path itself otherwise."""
    target, _, name = spec.rpartition(":")
    return f"{Path(target).name}:{name}" if target.endswith(".py") else spec
