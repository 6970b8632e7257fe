"""Paired statistics (tuner.evidence._statistics) against scipy and hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from tuner.evidence._statistics import bootstrap_ci, compare, wilcoxon_p


def test_wilcoxon_matches_the_exact_hand_computed_value():
    # five positive differences: only the all-positive sign pattern (and its mirror) is as extreme as this,
    # so the exact two-sided p-value is 2 / 2**5
    assert wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(2 / 32)
    # one negative difference of rank 1: T- = 1; patterns with T- <= 1 are {} and {1}, two-sided: 4 / 32
    assert wilcoxon_p([-0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(4 / 32)


def test_wilcoxon_drops_zeros_and_all_zero_differences_give_one():
    assert wilcoxon_p([0.0, 0.0, 0.0]) == 1.0
    assert wilcoxon_p(torch.zeros(8)) == 1.0
    d = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert wilcoxon_p(d) == pytest.approx(2 / 32)  # the zero is dropped, as in Wilcoxon's original test


def test_wilcoxon_agrees_with_scipy_on_many_samples():
    rng = np.random.default_rng(1)
    d = rng.normal(0.05, 0.2, size=64)
    assert wilcoxon_p(d) == pytest.approx(stats.wilcoxon(d).pvalue)


def test_bootstrap_interval_of_constant_differences_is_that_constant():
    assert bootstrap_ci([0.25] * 10) == pytest.approx((0.25, 0.25))


def test_bootstrap_interval_agrees_with_scipys_percentile_bootstrap():
    rng = np.random.default_rng(2)
    d = rng.normal(0.1, 0.3, size=40)
    low, high = bootstrap_ci(d, n_resamples=20_000)
    theirs = stats.bootstrap(
        (d,),
        np.mean,
        n_resamples=20_000,
        method="percentile",
        confidence_level=0.95,
        random_state=np.random.default_rng(3),
    ).confidence_interval
    width = theirs.high - theirs.low
    assert abs(low - theirs.low) < 0.05 * width and abs(high - theirs.high) < 0.05 * width
    # and the normal-theory interval of the mean is close too (a sanity check on the scale)
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    assert abs((high - low) / 2 - half) < 0.15 * half


def test_bootstrap_is_reproducible_and_seeded():
    d = np.random.default_rng(4).normal(size=20)
    assert bootstrap_ci(d) == bootstrap_ci(d)
    assert bootstrap_ci(d, seed=1) != bootstrap_ci(d, seed=2)


def test_compare_is_paired_and_oriented():
    base = torch.linspace(0, 1, 12)
    better = base + 0.1
    result = compare(better, base)
    assert result.diff == pytest.approx(0.1) and result.n == 12
    assert result.ci_low == pytest.approx(0.1) and result.ci_high == pytest.approx(0.1)
    assert result.p < 0.001  # 12 equal positive differences: exact p = 2 / 2**12
    assert compare(base, better).diff == pytest.approx(-0.1)
    # an unpaired reading would see two overlapping distributions; the pairing makes the gain certain
    assert stats.mannwhitneyu(better.numpy(), base.numpy()).pvalue > 0.3
    with pytest.raises(ValueError, match="paired"):
        compare(base, base[:5])
