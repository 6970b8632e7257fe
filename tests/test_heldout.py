"""Held-out scores: a variant's configurations scored together (one forward pass per chunk shared by their
attributions) equal the scores of each configuration alone."""

import torch
from helpers import run_tune
from torch import nn

import tuner.evidence._heldout as heldout
from explainers import LRPEpsilonPlus
from tuner.evidence._heldout import HeldOutScorer
from tuner.search._objective import configuration_key


def test_companions_of_one_class_are_scored_together_and_as_alone(monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3)).eval()
    inputs, labels = torch.randn(16, 1, 8, 8), torch.arange(16) % 3
    result = run_tune(LRPEpsilonPlus, model, (inputs, labels), n_trials=1, n_samples=8, show_progress_bar=False)
    default = result.space.variants["LRPEpsilonPlus"]
    other = default.set_kwargs(epsilon=0.5)
    shared: list[int] = []
    original = heldout.attribute_many

    def counted(explainers, x, y):
        shared.append(len(explainers))
        return original(explainers, x, y)

    monkeypatch.setattr(heldout, "attribute_many", counted)
    together = HeldOutScorer(result.holdout, lambda: [default, other])
    scores = together.scores(default)
    n_chunks = len(list(result.holdout._chunks()))
    assert shared == [2] * n_chunks  # both configurations, each chunk's forward shared
    assert configuration_key(other) in together._scores  # scored with the default, not asked for again
    alone = HeldOutScorer(result.holdout)
    assert torch.allclose(scores, alone.scores(default), atol=1e-6)
    assert torch.allclose(together.scores(other), alone.scores(other), atol=1e-6)
    assert torch.allclose(together.attributions(other), alone.attributions(other), atol=1e-6)
    assert not torch.allclose(alone.attributions(default), alone.attributions(other), atol=1e-3)  # they differ
    assert len(shared) == n_chunks  # the scorer alone attributes one configuration at a time
