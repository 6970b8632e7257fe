"""Heatmap images of attributions: one PNG row per configuration, for the dashboard and ``--out``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw

CELL = 96  # pixels per heatmap side


def relevance_maps(attributions: torch.Tensor) -> np.ndarray:
    """Per-sample 2-D maps: images summed over channels, flat features and sequences as one row."""
    relevance = attributions.detach().float().cpu()
    if relevance.ndim == 4:
        return relevance.sum(1).numpy()
    if relevance.ndim == 3:  # (B, L, E) embeddings: one value per position
        relevance = relevance.sum(2)
    return relevance.reshape(len(relevance), 1, -1).numpy()


def colour(relevance: np.ndarray) -> Image.Image:
    """A 2-D map in the bwr colour map, symmetric around zero (white)."""
    scale = float(np.abs(relevance).max()) or 1.0
    rgba = colormaps["bwr"]((relevance / scale + 1) / 2)
    return Image.fromarray((rgba[..., :3] * 255).astype(np.uint8), "RGB")


def heatmap_row(attributions: torch.Tensor, n: int = 4) -> Image.Image:
    """The first ``n`` samples' heatmaps side by side (red positive, blue negative, white zero)."""
    maps = relevance_maps(attributions[:n])
    cells = [
        colour(m).resize((CELL, max(8, int(CELL * m.shape[0] / max(m.shape)))), Image.Resampling.NEAREST) for m in maps
    ]
    height = max(cell.height for cell in cells)
    row = Image.new("RGB", (CELL * len(cells), height), "white")
    for index, cell in enumerate(cells):
        row.paste(cell, (index * CELL, 0))
    return row


def heatmap_grid(rows: Sequence[tuple], path: str | Path) -> Path:
    """A labelled grid: each row is (label, attributions). Saved as PNG at ``path``."""
    label_width = 220
    images = [(label, heatmap_row(attributions)) for label, attributions in rows]
    width = label_width + max(image.width for _, image in images)
    grid = Image.new("RGB", (width, sum(image.height + 4 for _, image in images)), "white")
    draw = ImageDraw.Draw(grid)
    top = 0
    for label, image in images:
        draw.text((4, top + image.height // 2 - 6), label[:34], fill="black")
        grid.paste(image, (label_width, top))
        top += image.height + 4
    path = Path(path)
    grid.save(path)
    return path
