"""ROAD's noisy linear imputation: the ``baseline="road"`` of the perturbation metrics.

Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution Methods" (ICML 2022). A removed
pixel becomes the weighted mean of its 8 neighbours (direct ones weight 1/6, diagonal ones 1/12, the weights of
the paper's reference implementation), neighbours that are removed too being unknowns as well: one sparse linear
system per (image, mask), solved for all channels at once, plus small Gaussian noise. Unlike a fixed baseline,
the filled values follow the surrounding pixels, so the removed region's shape leaks less into the score.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import spsolve
from torch import Tensor

#: the std of the noise added to the imputed values, in input units (the paper's default)
ROAD_NOISE = 0.01

#: (row offset, column offset, weight) of the 8 neighbours; they sum to 1
NEIGHBOURS: tuple[tuple[int, int, float], ...] = (
    (-1, 0, 1 / 6),
    (1, 0, 1 / 6),
    (0, -1, 1 / 6),
    (0, 1, 1 / 6),
    (-1, -1, 1 / 12),
    (-1, 1, 1 / 12),
    (1, -1, 1 / 12),
    (1, 1, 1 / 12),
)


def _impute_one(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The linear imputation of one (C, H, W) float64 image at its ``removed`` (H, W) pixels: (C, n_removed).

    Row r of the system: ``s_r x_r - sum_(removed nb) w x_nb = sum_(known nb) w v_nb``, with ``s_r`` the summed
    weight of the neighbours inside the image (a border pixel has fewer). Every 8-connected group of removed
    pixels touches a known pixel unless all are removed, so the system is regular then; an image with every pixel
    removed has nothing to interpolate from and takes 0 (the default baseline)."""
    channels, height, width = image.shape
    rows_i, cols_j = np.nonzero(removed)
    n = len(rows_i)
    if n == height * width:
        return np.zeros((channels, n))
    variable = np.full((height, width), -1, dtype=np.int64)
    variable[rows_i, cols_j] = np.arange(n)
    total = np.zeros(n)
    rhs = np.zeros((n, channels))
    entries_r, entries_c, entries_v = [], [], []
    for di, dj, weight in NEIGHBOURS:
        ni, nj = rows_i + di, cols_j + dj
        inside = (ni >= 0) & (ni < height) & (nj >= 0) & (nj < width)
        rows, ni, nj = np.nonzero(inside)[0], ni[inside], nj[inside]
        total[rows] += weight
        unknown = removed[ni, nj]
        entries_r.append(rows[unknown])
        entries_c.append(variable[ni[unknown], nj[unknown]])
        entries_v.append(np.full(int(unknown.sum()), -weight))
        known = ~unknown
        np.add.at(rhs, rows[known], weight * image[:, ni[known], nj[known]].T)
    entries_r.append(np.arange(n))
    entries_c.append(np.arange(n))
    entries_v.append(total)
    matrix = csc_matrix(
        (np.concatenate(entries_v), (np.concatenate(entries_r), np.concatenate(entries_c))), shape=(n, n)
    )
    return np.asarray(spsolve(matrix, rhs)).reshape(n, channels).T


def road_impute(
    images: Tensor, masks: Tensor, *, noise: float = ROAD_NOISE, generator: torch.Generator | None = None
) -> Tensor:
    """``images`` (N, C, H, W) with the pixels where ``masks`` ((N, H, W) or (N, 1, H, W), bool) is True filled by
    ROAD's noisy linear imputation (Rong et al. 2022); the other pixels are returned bit for bit.

    The noise (std ``noise``) of image n is the n-th (C, H, W) draw of ``generator`` (a CPU generator; None: the
    global one), so a generator seeded the same way gives the same values whatever the chunking of the rows.
    """
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"ROAD imputation needs float images (N, C, H, W); got shape {tuple(images.shape)}.")
    masks = masks.reshape(len(images), *images.shape[2:]).bool()
    filled = images.detach().clone()
    pixels = images.detach().to("cpu", torch.float64).numpy()
    removed = masks.cpu().numpy()
    for n in range(len(images)):
        draw = torch.randn(images.shape[1:], generator=generator, dtype=torch.float64)
        if not removed[n].any():
            continue
        values = torch.from_numpy(_impute_one(pixels[n], removed[n]))
        if noise:
            values = values + noise * draw[:, torch.from_numpy(removed[n])]
        filled[n][:, masks[n]] = values.to(filled.device, filled.dtype)
    return filled


def road_baseline(inputs: Tensor, baseline_seed: int, noise: float = ROAD_NOISE) -> Callable[[Tensor, Tensor], Tensor]:
    """The ``(inputs_chunk, mask_chunk) -> perturbed_chunk`` function of ``baseline="road"`` for one call: its
    noise comes from a generator seeded with ``baseline_seed``, so the same call twice gives the same scores."""
    if inputs.ndim != 4 or not inputs.is_floating_point():
        raise ValueError("baseline 'road' is defined for images (B, C, H, W) only.")
    generator = torch.Generator().manual_seed(baseline_seed)

    def perturb(chunk: Tensor, mask: Tensor) -> Tensor:
        return road_impute(chunk, mask, noise=noise, generator=generator)

    return perturb
