"""Paired statistics on held-out samples: is configuration A better than B, and by how much?

Two explainers scored on the same samples give paired scores; their per-sample differences d_i = a_i - b_i
are what is tested. :func:`compare` reports the mean difference, a 95% percentile-bootstrap confidence
interval of it (resampling samples with replacement, ``n_resamples`` times, from a fixed seed; Efron &
Tibshirani 1993, ch. 13) and the two-sided p-value of the paired Wilcoxon signed-rank test
(``scipy.stats.wilcoxon``, zero differences dropped; p = 1 when every difference is zero). The interval says
how large the gain is; the test whether it is told apart from no gain without assuming normal scores.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy import stats

#: bootstrap resamples and the seed of their generator (fixed: the same scores give the same interval)
N_RESAMPLES = 10_000
SEED = 0
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Comparison:
    """A versus B on the same samples: mean of a_i - b_i, its bootstrap interval, the Wilcoxon p-value."""

    diff: float
    ci_low: float
    ci_high: float
    p: float
    n: int

    def as_dict(self, prefix: str = "", *, with_n: bool = True) -> dict[str, float | int]:
        """The fields as columns, e.g. ``{"vs default: diff": ...}`` with ``prefix="vs default: "``."""
        names = {"diff": "diff", "ci_low": "CI low", "ci_high": "CI high", "p": "p", "n": "n"}
        return {f"{prefix}{names[key]}": value for key, value in asdict(self).items() if with_n or key != "n"}


def _differences(a, b) -> np.ndarray:
    a_arr, b_arr = _as_array(a), _as_array(b)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(f"paired scores need two 1-d arrays of one length; got {a_arr.shape} and {b_arr.shape}")
    return a_arr - b_arr


def _as_array(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=float)


def bootstrap_ci(
    differences, *, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = SEED
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``differences``: the (1 - confidence) / 2 and
    (1 + confidence) / 2 quantiles of the means of ``n_resamples`` resamples drawn with replacement."""
    d = _as_array(differences)
    if d.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_resamples, d.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def wilcoxon_p(differences) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test of ``differences`` against 0 (zeros dropped, as
    Wilcoxon proposed); 1.0 when no difference is non-zero (nothing tells the two apart)."""
    d = _as_array(differences)
    if not np.any(d != 0):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def compare(a, b, *, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> Comparison:
    """Paired comparison of per-sample scores ``a`` and ``b`` (same samples, same order): positive ``diff``
    means a scores higher."""
    d = _differences(a, b)
    low, high = bootstrap_ci(d, n_resamples=n_resamples, seed=seed)
    return Comparison(float(d.mean()) if d.size else math.nan, low, high, wilcoxon_p(d), int(d.size))
