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


#: fewer scored samples than this give no Kendall's tau: its bootstrap interval would span almost everything
MIN_SAMPLES_FOR_TAU = 5
#: bootstrap resamples of tau's interval (each resample ranks the methods again, so fewer than for a mean)
TAU_RESAMPLES = 2_000


@dataclass(frozen=True)
class Tau:
    """Kendall's tau-b of two metrics' method means, with its percentile-bootstrap interval over the samples (None
    for each with fewer than :data:`MIN_SAMPLES_FOR_TAU` samples)."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int

    def text(self) -> str:
        """``τ 0.71 [0.43, 0.90]``, "too few samples for τ", or "τ undefined: all tie" (a metric that scores every
        method the same orders nothing)."""
        if self.value is None:
            return "too few samples for τ"
        if math.isnan(self.value):
            return "τ undefined: all tie"
        return f"τ {self.value:+.2f} [{self.ci_low:+.2f}, {self.ci_high:+.2f}]"


def kendall_tau_b(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between the last axes of ``a`` and ``b`` (…, methods), vectorised over the leading axes;
    equal to ``scipy.stats.kendalltau`` (NaN where one side is constant)."""
    da = np.sign(a[..., :, None] - a[..., None, :])
    db = np.sign(b[..., :, None] - b[..., None, :])
    upper = np.triu(np.ones(da.shape[-2:], dtype=bool), 1)
    concordance = (da * db)[..., upper].sum(-1)
    untied_a, untied_b = (da[..., upper] != 0).sum(-1), (db[..., upper] != 0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return concordance / np.sqrt(untied_a * untied_b)


def tau_with_ci(
    objective, other, *, n_resamples: int = TAU_RESAMPLES, confidence: float = CONFIDENCE, seed: int = SEED
) -> Tau:
    """Kendall's tau-b between the methods' mean scores under two metrics, from per-sample scores (methods,
    samples) each oriented so that higher is better, and its percentile-bootstrap interval (samples resampled
    with replacement, the same resample for both metrics)."""
    a, b = _as_array(objective), _as_array(other)
    n = a.shape[-1]
    if n < MIN_SAMPLES_FOR_TAU:
        return Tau(None, None, None, n)
    value = float(kendall_tau_b(a.mean(-1), b.mean(-1)))
    index = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    taus = kendall_tau_b(a[:, index].mean(-1).T, b[:, index].mean(-1).T)
    taus = taus[~np.isnan(taus)]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(taus, [alpha, 1 - alpha]) if taus.size else (math.nan, math.nan)
    return Tau(value, float(low), float(high), n)
