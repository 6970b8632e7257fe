"""Agreement with Quantus, and the from_quantus wrapper (numpy shim, global-RNG handling)."""

import numpy as np
import pytest
import quantus
import torch
from torch import nn

from metrics import MoRF, from_quantus


@pytest.fixture
def metric_conv():
    """A small nonlinear CNN on single-channel 8x8 images, 4 samples, continuous attributions."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 5)).eval()
    x = torch.randn(4, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 3])
    a = torch.randn(4, 1, 8, 8)  # no ties, so both orders are the same
    return model, x, y, a


def quantus_pixel_flipping(**kw):
    return quantus.PixelFlipping(
        features_in_step=8, perturb_baseline="black", normalise=False, abs=False, disable_warnings=True, **kw
    )


def test_curve_equals_quantus_pixel_flipping(metric_conv):
    model, x, y, a = metric_conv
    black = x.flatten(1).amin(1).view(-1, *[1] * (x.ndim - 1))  # Quantus's "black": each sample's minimum
    ours = MoRF(model, n_steps=8, baseline=black, batch_size=5).curve(x, y, a)
    theirs = quantus_pixel_flipping()(
        model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), softmax=True, device="cpu"
    )
    torch.testing.assert_close(ours, torch.tensor(theirs, dtype=torch.float), atol=1e-5, rtol=0)
    # the check would catch a wrong order: the reversed curve differs
    other = MoRF(model, n_steps=8, baseline=black).curve(x, y, -a)
    assert (other - torch.tensor(theirs)).abs().max() > 1e-3


def test_wrapper_runs_a_quantus_metric_that_calls_np_trapz(metric_conv):
    model, x, y, a = metric_conv
    had_trapz = hasattr(np, "trapz")
    metric = from_quantus(quantus_pixel_flipping(return_auc_per_sample=True), model, softmax=True)
    assert metric.direction == "minimize"  # Quantus: lower is better for the MoRF curve's area
    scores = metric(x, y, a)
    black = x.flatten(1).amin(1).view(-1, *[1] * (x.ndim - 1))  # Quantus's "black": each sample's minimum
    curve = MoRF(model, n_steps=8, baseline=black).curve(x, y, a).numpy()
    expected = torch.tensor(np.trapezoid(curve, axis=1), dtype=torch.float)
    assert scores.shape == (4,)
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=0)
    assert hasattr(np, "trapz") == had_trapz  # the shim does not outlive the call


def test_wrapper_seeds_quantus_locally_and_restores_the_global_rng(metric_conv):
    model, x, y, a = metric_conv

    def faithfulness(seed):
        return from_quantus(
            quantus.FaithfulnessCorrelation(nr_runs=10, subset_size=6, return_aggregate=False, disable_warnings=True),
            model,
            seed=seed,
        )

    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    first = faithfulness(0)(x, y, a)
    assert np.random.rand() == expected_next  # the caller's global stream is where it was
    assert torch.equal(first, faithfulness(0)(x, y, a))
    assert not torch.equal(first, faithfulness(1)(x, y, a))
    assert faithfulness(0).direction == "maximize"


def test_wrapper_rejects_per_sample_curves(metric_conv):
    model, x, y, a = metric_conv
    with pytest.raises(ValueError, match="return_auc_per_sample"):
        from_quantus(quantus_pixel_flipping(), model)(x, y, a)
    with pytest.raises(ValueError, match="Quantus metric instance"):
        from_quantus(MoRF, model)
