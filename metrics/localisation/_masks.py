"""Evidence masks as one bool row per sample over the feature positions, so every localisation metric reads them
alike (images per pixel, any channel true; flat features and tokens per column; embeddings per position)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._base import layout_of


def position_masks(masks: Tensor, inputs: Tensor) -> Tensor:
    """``masks`` as a bool tensor (B, n_positions) over the feature positions of ``layout_of(inputs)``.

    Accepted shapes: images (B, H, W), (B, 1, H, W) or (B, C, H, W), where a pixel is true if any channel is;
    flat features / token ids (B, D); embeddings (B, L) (or (B, L, 1), (B, L, E)). A non-bool mask is true where
    nonzero. Raises ``ValueError`` for another shape or for a sample whose mask has no true position.
    """
    layout = layout_of(inputs)
    batch = len(inputs)
    unit = "pixel" if inputs.ndim == 4 else "position"
    shapes = list(dict.fromkeys([(batch, *layout.positions), (batch, *layout.mask_shape), (batch, *layout.shape)]))
    if not isinstance(masks, Tensor) or tuple(masks.shape) not in shapes:
        got = tuple(masks.shape) if isinstance(masks, Tensor) else type(masks).__name__
        allowed = " or ".join(str(shape) for shape in shapes)
        raise ValueError(
            f"masks must be a tensor of shape {allowed} for inputs of shape {tuple(inputs.shape)}; got {got}. "
            f"Pass one mask per sample, true on the {unit}s where the evidence is."
        )
    inside = masks if masks.dtype == torch.bool else masks != 0
    if inside.ndim == inputs.ndim and layout.reduce_dims:
        inside = inside.any(dim=layout.reduce_dims[0])
    inside = inside.reshape(batch, -1)
    empty = (~inside.any(1)).nonzero().flatten().tolist()
    if empty:
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise ValueError(
            f"sample {empty[0]}'s mask has no true {unit}{more}: a localisation score needs evidence to point at; "
            f"pass a mask with at least one true {unit} per sample, or drop the sample."
        )
    return inside
