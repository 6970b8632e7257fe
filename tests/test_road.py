"""ROAD's noisy linear imputation (Rong et al. 2022) and the ``baseline="road"`` of the perturbation metrics."""

import pytest
import torch
from torch import nn

import metrics
from metrics import BASELINES
from metrics.perturbation._road import road_impute


def square_mask(n=1, side=16, top=5, size=6):
    mask = torch.zeros(n, side, side, dtype=torch.bool)
    mask[:, top : top + size, top : top + size] = True
    return mask


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_constant_image_is_filled_with_the_constant():
    images = torch.full((2, 3, 16, 16), 0.7)
    mask = square_mask(2, top=0)  # touches the border: fewer neighbours there
    filled = road_impute(images, mask, noise=0.0)
    torch.testing.assert_close(filled, images, atol=1e-6, rtol=0)
    noisy = road_impute(images, mask, noise=0.01, generator=generator())
    removed = mask[:, None].expand_as(images)
    assert 0 < float((noisy - images)[removed].abs().max()) < 0.06  # only the noise, 0.01 std
    assert 0.005 < float((noisy - images)[removed].std()) < 0.015


def test_linear_image_is_filled_exactly_in_the_interior():
    i, j = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    images = torch.stack([0.3 * i - 0.2 * j + 1.0, -0.1 * i + 0.5 * j, 2.0 * i + j - 3.0])[None]
    mask = square_mask(1, top=4, size=7)  # rows and columns 4..10: no border pixel
    mask[0, 12, 3] = True  # and a lone pixel
    filled = road_impute(images, mask, noise=0.0)
    torch.testing.assert_close(filled, images, atol=1e-5, rtol=0)
    # a fixed baseline would not: the removed values really were computed from the neighbours
    blanked = images.clone()
    blanked[:, :, mask[0]] = 0.0
    torch.testing.assert_close(road_impute(blanked, mask, noise=0.0), images, atol=1e-5, rtol=0)


def test_a_lone_pixel_is_the_weighted_mean_of_its_neighbours():
    images = torch.rand(1, 2, 6, 6, generator=generator(7), dtype=torch.float64)
    mask = torch.zeros(1, 6, 6, dtype=torch.bool)
    mask[0, 2, 3] = mask[0, 0, 0] = True
    filled = road_impute(images, mask, noise=0.0)
    v = images[0]
    direct = v[:, 1, 3] + v[:, 3, 3] + v[:, 2, 2] + v[:, 2, 4]
    diagonal = v[:, 1, 2] + v[:, 1, 4] + v[:, 3, 2] + v[:, 3, 4]
    torch.testing.assert_close(filled[0, :, 2, 3], direct / 6 + diagonal / 12)
    # the corner: three neighbours, normalised by their weights 1/6 + 1/6 + 1/12
    corner = ((v[:, 0, 1] + v[:, 1, 0]) / 6 + v[:, 1, 1] / 12) / (5 / 12)
    torch.testing.assert_close(filled[0, :, 0, 0], corner)


def test_noise_is_seeded_and_only_on_removed_pixels():
    images = torch.rand(3, 3, 16, 16, generator=generator(5))
    mask = torch.rand(3, 16, 16, generator=generator(6)) < 0.4
    mask[1] = False  # an image with nothing removed
    first = road_impute(images, mask, generator=generator(1))
    assert torch.equal(first, road_impute(images, mask, generator=generator(1)))
    assert not torch.equal(first, road_impute(images, mask, generator=generator(2)))
    kept = ~mask[:, None].expand_as(images)
    assert torch.equal(first[kept], images[kept])  # bit for bit
    assert torch.equal(first[1], images[1])
    assert not torch.equal(first[mask[:, None].expand_as(images)], images[mask[:, None].expand_as(images)])
    # (N, 1, H, W) masks, the engine's layout, give the same
    assert torch.equal(first, road_impute(images, mask[:, None], generator=generator(1)))


def test_every_pixel_removed_gives_zero_plus_noise():
    images = torch.rand(1, 3, 8, 8) + 1.0
    filled = road_impute(images, torch.ones(1, 8, 8, dtype=torch.bool), noise=0.0)
    assert torch.equal(filled, torch.zeros_like(images))


def tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 5)
    ).eval()


def test_metric_with_road_baseline_is_finite_seeded_and_images_only():
    model = tiny_cnn()
    x = torch.rand(2, 3, 16, 16, generator=generator(3))
    y = torch.tensor([1, 4])
    a = torch.randn(x.shape, generator=generator(4))
    metric = metrics.get_metric("abpc", model, baseline="road", n_steps=4, batch_size=3)
    scores = metric(x, y, a)
    assert scores.shape == (2,) and bool(torch.isfinite(scores).all())
    assert torch.equal(scores, metric(x, y, a))  # the same call twice: the same noise
    other = metrics.get_metric("abpc", model, baseline="road", n_steps=4, batch_size=3, baseline_seed=9)
    assert not torch.equal(scores, other(x, y, a))
    # nothing removed: exactly the unperturbed score, no noise
    p = torch.softmax(model(x), -1)[torch.arange(2), y].detach()
    assert torch.equal(metric.reference(x, y), p)
    flat = nn.Sequential(nn.Linear(12, 5)).eval()
    with pytest.raises(ValueError, match="images"):
        metrics.get_metric("morf", flat, baseline="road", n_steps=3)(torch.rand(2, 12), y, torch.rand(2, 12))


def test_unknown_baseline_lists_the_baselines():
    assert "road" in BASELINES
    with pytest.raises(ValueError, match="road"):
        metrics.get_metric("abpc", tiny_cnn(), baseline="roads")
