"""ImageNet presets on torchvision models: resnet50, resnet18, vgg16.

The objective's baseline is the study's default for images (:func:`metrics.perturbation.study_baseline`): a
Gaussian blur, sigma 5 pixels on 224×224 photos.
"""

from __future__ import annotations

import re
import urllib.request
from functools import partial
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models import WeightsEnum

from registry import first_line

from .._base import Preset
from .._errors import WeightsError, WeightsUnavailableError
from ..loading._preprocessing import Preprocessing, load_images
from ..loading._weights import apply_state_dict, head_size, read_state_dict


def _weights_enum(arch: str) -> type[WeightsEnum]:
    return torchvision.models.get_model_weights(arch)


def _download(arch: str, weights: WeightsEnum) -> dict[str, Tensor]:
    """Fetch torchvision weights into torchvision's hub cache, or read them from it without a network; when they
    can be neither, raise WeightsUnavailableError and leave no folder behind."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    absent = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        if not (folder / Path(weights.url).name).is_file():
            _reachable(weights.url)  # fail before torch.hub announces a download
        return torch.hub.load_state_dict_from_url(weights.url, progress=True, check_hash=True, weights_only=True)
    except (OSError, RuntimeError) as exc:  # URLError and socket errors are OSErrors
        for created in absent:  # torch.hub made these folders before the download failed
            if created.is_dir() and not any(created.iterdir()):
                created.rmdir()
        raise WeightsUnavailableError(
            f"cannot fetch the {arch} weights {weights.name} ({first_line(exc)}); torchvision looks for them in its "
            f"hub cache folder {folder} (as {Path(weights.url).name}): put the file there, or pass --weights PATH "
            "(a local state dict) or --weights none (random weights)"
        ) from exc


def _reachable(url: str) -> None:
    """Raise URLError (an OSError) when ``url`` cannot be reached within 15 seconds."""
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15):
        pass


def random_model(arch: str, seed: int = 0, **kwargs: object) -> nn.Module:
    """torchvision model ``arch`` with random weights drawn from ``seed`` (the same command builds the same model).

    torchvision starts a few weights at zero (ViT's head and class token); those are drawn from N(0, 0.02) so that
    a random model's logits, and so its relevance, are not all zero.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = torchvision.models.get_model(arch, weights=None, **kwargs)
        for name, parameter in model.named_parameters():
            if not name.endswith("bias") and not parameter.detach().any():
                nn.init.normal_(parameter, std=0.02)
    return model


def default_weights(arch: str) -> WeightsEnum:
    """The DEFAULT weights of ``arch``: their preprocessing serves random weights and state dicts too."""
    return _weights_enum(arch).DEFAULT


def pretrained_weights(arch: str, spec: str | None) -> WeightsEnum | None:
    """The torchvision weights that ``--weights`` names (DEFAULT, or an enum member name such as IMAGENET1K_V2;
    None means DEFAULT), or None for ``none`` and a state-dict path."""
    spec = "DEFAULT" if spec is None else str(spec)
    enum = _weights_enum(arch)
    if spec.upper() == "DEFAULT":
        return enum.DEFAULT
    return enum.__members__.get(spec)


def check_weights(arch: str, spec: str | None) -> None:
    """Raise WeightsError, listing the valid names, when ``--weights`` looks like a weights enum name that
    ``arch`` does not have (and is no file)."""
    if spec is None or spec.lower() == "none" or pretrained_weights(arch, spec) is not None:
        return
    if not Path(spec).expanduser().exists() and re.fullmatch(r"[A-Z][A-Z0-9_]*", spec):
        raise WeightsError(
            f"{arch} has no weights {spec}; pass --weights DEFAULT, "
            f"{', '.join(k for k in _weights_enum(arch).__members__ if k != 'DEFAULT')}, none, or a state-dict path"
        )


def load_torchvision_model(
    arch: str, weights: str | None, device: torch.device, *, num_classes: int | None = None
) -> nn.Module:
    """Build torchvision model `arch` with weights DEFAULT (or an enum name like IMAGENET1K_V1), none, or PATH;
    ``num_classes`` sets the head (read from a state dict's head when not given)."""
    check_weights(arch, weights)
    chosen = pretrained_weights(arch, weights)
    extra = {} if num_classes is None else {"num_classes": num_classes}
    if weights is not None and weights.lower() == "none":
        return random_model(arch, seed=torch.initial_seed(), **extra)  # Preset.load_model seeds it from --seed
    if chosen is not None:
        n_categories = len(chosen.meta["categories"])
        if num_classes is not None and num_classes != n_categories:
            raise WeightsError(
                f"the {arch} weights {chosen.name} have {n_categories} classes, not {num_classes}; pass --weights PATH "
                "(a state dict with that head) or --weights none"
            )
        state_dict = _download(arch, chosen)
        return apply_state_dict(torchvision.models.get_model(arch, weights=None), state_dict, chosen.url)
    state_dict = read_state_dict(str(weights))
    if num_classes is None:
        num_classes = head_size(torchvision.models.get_model(arch, weights=None), state_dict)
        extra = {} if num_classes is None else {"num_classes": num_classes}
    return apply_state_dict(torchvision.models.get_model(arch, weights=None, **extra), state_dict, str(weights))


def torchvision_preprocessing(arch: str, weights: str | None = None) -> Preprocessing:
    """The preprocessing of the weights ``--weights`` names; for none or a path, that of the DEFAULT weights."""
    chosen = pretrained_weights(arch, weights)
    return Preprocessing.from_weights(chosen if chosen is not None else default_weights(arch))


def torchvision_preset(
    arch: str,
    description: str,
    defaults: dict,
    *,
    preprocessing: Preprocessing | None = None,
    num_classes: int | None = None,
) -> Preset:
    """Make the preset of torchvision model `arch`: its data and bounds follow ``preprocessing`` (default: that of
    its DEFAULT weights), its model has ``num_classes`` outputs (default: those of the weights)."""
    preprocessing = preprocessing or torchvision_preprocessing(arch)
    low, high = preprocessing.bounds()
    return Preset(
        name=arch,
        description=description,
        model=partial(load_torchvision_model, arch, num_classes=num_classes),
        data=partial(load_images, preprocessing),
        low=low,
        high=high,
        defaults=defaults,
    )


#: study defaults of a torchvision architecture that has no preset of its own
GENERIC_DEFAULTS = {"n_samples": 16, "n_trials": 20, "batch_size": 4}
#: study defaults of the torchvision architectures that have a preset
TORCHVISION_DEFAULTS = {
    "resnet50": {"n_samples": 16, "n_trials": 20, "batch_size": 4},
    "resnet18": {"n_samples": 16, "n_trials": 40, "batch_size": 8},
    "vgg16": {"n_samples": 16, "n_trials": 12, "batch_size": 4},
}


def torchvision_classifiers() -> list[str]:
    """The names of torchvision's classification architectures (``--model`` takes any of them)."""
    return torchvision.models.list_models(module=torchvision.models)


RESNET50 = torchvision_preset(
    "resnet50", "torchvision ResNet-50 on ImageNet photographs", TORCHVISION_DEFAULTS["resnet50"]
)
RESNET18 = torchvision_preset(
    "resnet18", "torchvision ResNet-18 on ImageNet photographs", TORCHVISION_DEFAULTS["resnet18"]
)
VGG16 = torchvision_preset("vgg16", "torchvision VGG-16 on ImageNet photographs", TORCHVISION_DEFAULTS["vgg16"])
