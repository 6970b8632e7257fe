"""ImageNet presets on torchvision models: resnet50, resnet18, vgg16.

The objective's default baseline is a Gaussian blur with sigma 5 pixels (on 224×224 photos). Not ``"zero"``:
after ImageNet normalisation 0 is the data's mean colour, the reference point of Integrated Gradients with a
zero reference and of gradient×input, which a zero baseline therefore favours; a blur removes the fine
structure a classifier reads and coincides with no reference row's reference point (Fong & Vedaldi, ICCV 2017).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models import WeightsEnum

from ._base import Preset, bounds_from_normalization
from ._errors import WeightsUnavailableError, first_line
from ._images import load_image_folder, sample_photos
from ._weights import apply_state_dict, read_state_dict


def _weights_enum(arch: str) -> type[WeightsEnum]:
    return torchvision.models.get_model_weights(arch)


def _download(arch: str, weights: WeightsEnum) -> dict[str, Tensor]:
    """Fetch torchvision weights into the torch hub cache (or read them from it)."""
    try:
        return torch.hub.load_state_dict_from_url(weights.url, progress=True, check_hash=True, weights_only=True)
    except (OSError, RuntimeError) as exc:  # URLError and socket errors are OSErrors
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise WeightsUnavailableError(
            f"cannot get the {arch} weights {weights} ({first_line(exc)}); when offline, put the file at "
            f"{cached}, or pass --weights PATH (a local state dict) or --weights none (random weights)"
        ) from exc


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


def load_torchvision_model(arch: str, weights: str | None, device: torch.device) -> nn.Module:
    """Build torchvision model `arch` with weights DEFAULT (or an enum name like IMAGENET1K_V1), none, or PATH."""
    spec = "DEFAULT" if weights is None else str(weights)
    members = _weights_enum(arch).__members__
    if spec.lower() == "none":
        return random_model(arch, seed=torch.initial_seed())  # Preset.load_model seeds it from --seed
    if spec.upper() == "DEFAULT" or spec in members:
        chosen = _weights_enum(arch).DEFAULT if spec.upper() == "DEFAULT" else members[spec]
        state_dict = _download(arch, chosen)
        return apply_state_dict(torchvision.models.get_model(arch, weights=None), state_dict, chosen.url)
    state_dict = read_state_dict(spec)
    return apply_state_dict(torchvision.models.get_model(arch, weights=None), state_dict, spec)


def load_torchvision_data(arch: str, data_dir: Path | None, n_samples: int | None) -> tuple[Tensor, Tensor | None]:
    """Preprocess an image folder, or the bundled sample photographs (no labels), with the weights' transforms."""
    transform = _weights_enum(arch).DEFAULT.transforms()
    if data_dir is not None:
        return load_image_folder(data_dir, transform, n_samples)
    photos = sample_photos()[:n_samples]
    return torch.stack([transform(photo) for photo in photos]), None


def torchvision_preset(arch: str, description: str, defaults: dict) -> Preset:
    """Make the preset of torchvision model `arch`, with bounds from its weights' normalisation."""
    transform = _weights_enum(arch).DEFAULT.transforms()
    low, high = bounds_from_normalization(transform.mean, transform.std)
    return Preset(
        name=arch,
        description=description,
        model=partial(load_torchvision_model, arch),
        data=partial(load_torchvision_data, arch),
        low=low,
        high=high,
        defaults=defaults,
        metric_kwargs={"baseline": "blur", "blur_sigma": 5.0},
    )


#: study defaults of a torchvision architecture that has no preset of its own
GENERIC_DEFAULTS = {"n_samples": 16, "n_trials": 20, "batch_size": 4}


def torchvision_classifiers() -> list[str]:
    """The names of torchvision's classification architectures (``--model`` takes any of them)."""
    return torchvision.models.list_models(module=torchvision.models)


RESNET50 = torchvision_preset(
    "resnet50", "torchvision ResNet-50 on ImageNet photographs", {"n_samples": 16, "n_trials": 20, "batch_size": 4}
)
RESNET18 = torchvision_preset(
    "resnet18", "torchvision ResNet-18 on ImageNet photographs", {"n_samples": 16, "n_trials": 40, "batch_size": 8}
)
VGG16 = torchvision_preset(
    "vgg16", "torchvision VGG-16 on ImageNet photographs", {"n_samples": 16, "n_trials": 12, "batch_size": 4}
)
