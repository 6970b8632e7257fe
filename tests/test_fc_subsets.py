"""FaithfulnessCorrelation's subsets: independent per sample by default (their noise averages out over a mean),
one draw for the batch with ``shared_subsets=True`` (Quantus's definition); both against a direct re-computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from metrics import FaithfulnessCorrelation
from metrics.perturbation._faithfulness_correlation import sample_keys


@pytest.fixture(scope="module")
def linear_model():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Tanh(), nn.Linear(10, 10)).eval()
        x = torch.randn(6, 1, 8, 8)
        attributions = torch.randn(6, 1, 8, 8)
    return model, x, model(x).argmax(1), attributions


@torch.no_grad()
def direct(model, x, y, attributions, masks) -> torch.Tensor:
    """FC per sample by its definition, one sample and one subset at a time (numpy's corrcoef)."""
    p = torch.softmax(model(x), -1)[torch.arange(len(x)), y].detach()
    scores = []
    for b in range(len(x)):
        relevance, drops = [], []
        for mask in masks[:, b]:  # (n_features,) positions of an 8x8 single-channel input
            removed = x[b].flatten().clone()
            removed[mask] = 0.0  # the zero baseline
            relevance.append(float(attributions[b].flatten()[mask].sum()))
            drops.append(float(p[b] - torch.softmax(model(removed.view(1, 1, 8, 8)), -1)[0, y[b]]))
        scores.append(np.corrcoef(relevance, drops)[0, 1])
    return torch.tensor(scores, dtype=torch.float)


@pytest.mark.parametrize("shared", [False, True])
def test_scores_match_the_definition_on_their_subsets(linear_model, shared):
    model, x, y, a = linear_model
    metric = FaithfulnessCorrelation(model, n_runs=12, n_repeats=1, subset_size=8, shared_subsets=shared)
    masks = metric.subsets(len(x), 64, 0, sample_keys=sample_keys(x))
    torch.testing.assert_close(metric(x, y, a), direct(model, x, y, a, masks), atol=1e-4, rtol=0)


def test_per_sample_subsets_differ_between_samples_and_follow_the_sample_not_its_position(linear_model):
    model, x, *_ = linear_model
    per_sample = FaithfulnessCorrelation(model, n_runs=12, subset_size=8)
    masks = per_sample.subsets(len(x), 64, sample_keys=sample_keys(x))
    assert not torch.equal(masks[:, 0], masks[:, 1])
    reordered = per_sample.subsets(2, 64, sample_keys=sample_keys(x[[3, 0]]))
    assert torch.equal(reordered[:, 0], masks[:, 3]) and torch.equal(reordered[:, 1], masks[:, 0])
    assert (masks.sum(-1) == 8).all()
    shared = FaithfulnessCorrelation(model, n_runs=12, subset_size=8, shared_subsets=True)
    common = shared.subsets(len(x), 64, sample_keys=sample_keys(x))
    assert all(torch.equal(common[:, 0], common[:, b]) for b in range(len(x)))
    assert shared.settings()["shared_subsets"] is True


def test_per_sample_subsets_do_not_depend_on_the_device_dtype_of_the_batch(linear_model):
    _, x, *_ = linear_model
    assert sample_keys(x) == sample_keys(x.double()) == sample_keys(x.clone())
    assert len(set(sample_keys(x))) == len(x)
