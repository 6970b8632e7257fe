"""How images become model inputs: resize, centre crop, normalise, and the z-box bounds that follow.

One value, :class:`Preprocessing`, read from torchvision weights (their ``transforms()``) or set by hand
(``--input-size``, ``--mean``, ``--std``), so that the data, the bounds of the z-box rule and what a run
prints all come from one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from .._base import bounds_from_normalization
from ._images import Transform, load_image_folder, sample_photos
from ._masks import MaskTransform

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to ``resize``, centre-crop ``crop`` x ``crop``, scale to 0..1, then
    ``(x - mean) / std`` per channel; one channel of mean/std means grayscale images."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: InterpolationMode = InterpolationMode.BILINEAR

    def __post_init__(self) -> None:
        if self.crop < 1 or self.resize < 1:
            raise ValueError(f"the input size must be at least 1 pixel, got {self.crop}")
        bounds_from_normalization(self.mean, self.std)  # raises for unequal channels or a non-positive std

    @classmethod
    def from_weights(cls, weights: object) -> Preprocessing:
        """The preprocessing of torchvision weights (an enum member), read from their ``transforms()``."""
        transform = weights.transforms()  # type: ignore[attr-defined]
        return cls(
            resize=int(transform.resize_size[0]),
            crop=int(transform.crop_size[0]),
            mean=tuple(float(m) for m in transform.mean),
            std=tuple(float(s) for s in transform.std),
            interpolation=transform.interpolation,
        )

    def override(
        self,
        *,
        input_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> Preprocessing:
        """A copy with the crop ``input_size`` (the resize keeps its ratio to the crop), ``mean`` or ``std``
        replaced; a one-value mean or std is repeated for every channel of the other."""
        changed = self
        if input_size is not None:
            changed = replace(changed, crop=input_size, resize=max(input_size, round(input_size * self.ratio)))
        new_mean = tuple(float(m) for m in mean) if mean is not None else changed.mean
        new_std = tuple(float(s) for s in std) if std is not None else changed.std
        if len(new_mean) != len(new_std):
            if 1 not in (len(new_mean), len(new_std)):
                raise ValueError(
                    f"the mean has {len(new_mean)} values but the std {len(new_std)}; pass --mean and --std "
                    "with one value per channel (1 for grayscale, 3 for RGB) or one value for all"
                )
            n = max(len(new_mean), len(new_std))
            new_mean, new_std = new_mean * (n // len(new_mean)), new_std * (n // len(new_std))
        return replace(changed, mean=new_mean, std=new_std)

    @property
    def ratio(self) -> float:
        """Resize over crop (256 / 224 for most ImageNet weights)."""
        return self.resize / self.crop

    @property
    def channels(self) -> int:
        return len(self.mean)

    @property
    def mode(self) -> str:
        """The PIL mode images are converted to: RGB, or L for one channel."""
        return "L" if self.channels == 1 else "RGB"

    def transform(self) -> Transform:
        """A function from a PIL image (in :attr:`mode`) to a normalised (C, crop, crop) tensor."""
        return _Transform(self)

    def mask_transform(self) -> MaskTransform:
        """A function from a mask image to bool (crop, crop): the same resize and crop, nearest neighbour."""
        return _MaskTransform(self)

    def bounds(self) -> tuple[Tensor, Tensor]:
        """(low, high) of shape (1, C, 1, 1): black and white pixels after normalisation (the z-box bounds)."""
        return bounds_from_normalization(self.mean, self.std)

    def describe(self) -> str:
        numbers = lambda values: ",".join(f"{v:g}" for v in values)  # noqa: E731
        return (
            f"resize {self.resize}, crop {self.crop}, mean {numbers(self.mean)}, std {numbers(self.std)} ({self.mode})"
        )


class _Transform:
    """A picklable transform (an image folder may be read by several workers)."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        self.p = preprocessing

    def __call__(self, image) -> Tensor:
        p = self.p
        image = F.resize(image, [p.resize], interpolation=p.interpolation, antialias=True)
        image = F.center_crop(image, [p.crop, p.crop])
        tensor = F.pil_to_tensor(image).float() / 255.0 if not torch.is_tensor(image) else image
        if tensor.shape[0] != p.channels:
            raise ValueError(f"image has {tensor.shape[0]} channels, the preprocessing expects {p.channels}")
        return F.normalize(tensor, list(p.mean), list(p.std))


class _MaskTransform:
    """A picklable mask transform: the image's resize and centre crop with nearest-neighbour sampling."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        self.p = preprocessing

    def __call__(self, mask) -> Tensor:
        p = self.p
        mask = F.resize(mask, [p.resize], interpolation=InterpolationMode.NEAREST)
        return F.pil_to_tensor(F.center_crop(mask, [p.crop, p.crop]))[0] > 0


def load_images(
    preprocessing: Preprocessing, data_dir: Path | None, n_samples: int | None, masks_dir: Path | None = None
) -> tuple[Tensor, Tensor | None] | tuple[Tensor, Tensor | None, Tensor]:
    """An image folder (labels from its class subfolders, else None; with ``masks_dir``, its evidence masks), or
    without one the sample photographs shipped with scikit-image and scikit-learn (no labels), preprocessed by
    ``preprocessing``."""
    transform = preprocessing.transform()
    if data_dir is not None:
        masks = None if masks_dir is None else (masks_dir, preprocessing.mask_transform())
        return load_image_folder(data_dir, transform, n_samples, mode=preprocessing.mode, masks=masks)
    photos = sample_photos()[:n_samples]
    return torch.stack([transform(photo.convert(preprocessing.mode)) for photo in photos]), None
