"""Image folders (flat or one subfolder per class) and the sample photographs shipped with scikit-image/-learn."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from registry import first_line

from .._errors import DataError
from ._masks import MaskTransform, load_masks

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")

Transform = Callable[[Image.Image], Tensor]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def list_image_folder(folder: Path) -> tuple[list[Path], list[int] | None]:
    """Return the image files of a folder and their labels (class subfolders sorted by name; flat: None)."""
    if not folder.is_dir():
        raise DataError(f"data folder not found: {folder}; pass --data DIR with an existing image folder")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    per_class = [_images_in(c) for c in classes]
    if any(per_class):
        files = [f for images in per_class for f in images]
        labels = [index for index, images in enumerate(per_class) for _ in images]
        return files, labels
    files = _images_in(folder)
    if not files:
        raise DataError(
            f"no images in {folder}; put {', '.join(IMAGE_EXTENSIONS[:3])}... files in it, "
            "directly or in one subfolder per class"
        )
    return files, None


def load_image_folder(
    folder: Path,
    transform: Transform,
    n_samples: int | None,
    mode: str = "RGB",
    masks: tuple[Path, MaskTransform] | None = None,
) -> tuple[Tensor, Tensor | None] | tuple[Tensor, Tensor | None, Tensor]:
    """Read an image folder (`n_samples` of it, drawn with a fixed seed so every class can appear), converted to
    `mode` and preprocessed by `transform`; with ``masks`` (a folder of mask PNGs and the transform that brings a
    mask to the input's pixels), their evidence masks as a third tensor, bool (N, H, W)."""
    files, labels = list_image_folder(folder)
    if n_samples is not None and n_samples < len(files):
        keep = sorted(torch.randperm(len(files), generator=torch.Generator().manual_seed(0))[:n_samples].tolist())
        files = [files[i] for i in keep]
        labels = None if labels is None else [labels[i] for i in keep]
    inputs = []
    for file in files:
        try:
            with Image.open(file) as image:
                inputs.append(transform(image.convert(mode)))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read image {file} ({first_line(exc)}); remove or replace it") from exc
    label_tensor = None if labels is None else torch.tensor(labels, dtype=torch.long)
    if masks is not None:
        return torch.stack(inputs), label_tensor, load_masks(files, folder, *masks)
    return torch.stack(inputs), label_tensor


def sample_photos() -> list[Image.Image]:
    """Return the RGB sample photographs that ship inside scikit-image and scikit-learn."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    arrays = [getattr(skimage.data, name)() for name in SKIMAGE_PHOTOS]
    arrays += list(load_sample_images().images)
    return [Image.fromarray(np.asarray(a, dtype=np.uint8)).convert("RGB") for a in arrays]
