"""Evidence masks beside an image folder: one PNG per image at the same relative path (non-zero pixels are where the
evidence is), brought to the input's pixels by the image's own resize and crop with nearest-neighbour sampling."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from registry import first_line

from .._errors import DataError

#: a mask image (mode "L") -> bool (H, W) on the input's pixels: the image transform's geometry, nearest neighbour
MaskTransform = Callable[[Image.Image], Tensor]


def mask_file(image: Path, folder: Path, masks: Path) -> Path:
    """Where ``image`` (a file of ``folder``) has its mask: the same relative path under ``masks``, as a PNG."""
    return (masks / image.relative_to(folder)).with_suffix(".png")


def load_masks(images: Sequence[Path], folder: Path, masks: Path, transform: MaskTransform) -> Tensor:
    """The masks of ``images`` as bool (N, H, W). A missing mask, one whose size differs from its image's, or one with
    no true pixel (before or after the crop) raises a one-line DataError, before any model runs."""
    loaded = []
    for image in images:
        path = mask_file(image, folder, masks)
        if not path.is_file():
            raise DataError(f"no mask for image {image}: expected {path}; give every image of --data a mask PNG")
        try:
            with Image.open(path) as mask, Image.open(image) as picture:
                if mask.size != picture.size:
                    raise DataError(
                        f"mask {path} is {mask.size[0]}x{mask.size[1]} pixels but its image {image} is "
                        f"{picture.size[0]}x{picture.size[1]}; a mask must have its image's size"
                    )
                if not np.asarray(mask.convert("L")).any():
                    raise DataError(f"mask {path} has no true pixel; mark the evidence with non-zero pixels")
                pixels = transform(mask.convert("L"))
        except OSError as exc:
            raise DataError(f"cannot read mask {path} ({first_line(exc)}); replace it") from exc
        if not pixels.any():
            raise DataError(f"mask {path} has no true pixel left after its image's resize and crop; enlarge it")
        loaded.append(pixels.bool())
    return torch.stack(loaded)


def nearest_mask(size: tuple[int, int]) -> MaskTransform:
    """A mask transform for images simply resized to ``size`` (height, width), with nearest-neighbour sampling."""

    def transform(mask: Image.Image) -> Tensor:
        resized = mask.resize((size[1], size[0]), Image.Resampling.NEAREST)
        return torch.from_numpy(np.asarray(resized) > 0)

    return transform
