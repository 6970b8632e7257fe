"""The localisation metrics (relevance mass and rank accuracy, the pointing game): agreement with Quantus 0.6,
hand-built cases, channels summed per pixel, and the checks of the masks."""

import numpy as np
import pytest
import quantus
import torch
from torch import nn

from metrics import METRICS, PointingGame, RelevanceMassAccuracy, RelevanceRankAccuracy, Sparseness, metric_class
from metrics.localisation import position_masks

LOCALISATION = (RelevanceMassAccuracy, RelevanceRankAccuracy, PointingGame)


def _images(batch=6, size=10, seed=0):
    """Non-negative 1-channel maps (random, clipped at 0) and rectangle masks of different sizes; every even
    sample's rectangle covers its map's maximum, every odd one avoids it."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, size, size, generator=generator)
    a = torch.randn(batch, 1, size, size, generator=generator).clamp_min(0)
    masks = torch.zeros(batch, 1, size, size, dtype=torch.bool)
    for i in range(batch):
        h, w = 2 + i % 3, 3 + i % 2
        row, col = divmod(int(a[i, 0].flatten().argmax()), size)
        if i % 2 == 0:
            top, left = min(row, size - h), min(col, size - w)
        else:
            top, left = (0, 0) if row >= size // 2 else (size - h, size - w)
        masks[i, 0, top : top + h, left : left + w] = True
    return x, a, masks


def _quantus(metric, x, a, masks):
    model = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 3)).eval()  # Quantus wants one; never used here
    y = torch.zeros(len(x), dtype=torch.long)
    scores = metric(
        model=model,
        x_batch=x.numpy(),
        y_batch=y.numpy(),
        a_batch=a.numpy(),
        s_batch=masks.numpy().astype(np.float32),
        device="cpu",
    )
    return torch.tensor(np.asarray(scores), dtype=torch.float64)


QUANTUS = {
    RelevanceMassAccuracy: quantus.RelevanceMassAccuracy,
    RelevanceRankAccuracy: quantus.RelevanceRankAccuracy,
    PointingGame: quantus.PointingGame,
}


@pytest.mark.parametrize("cls", LOCALISATION, ids=lambda cls: cls.__name__)
def test_each_metric_equals_quantus_on_non_negative_maps(cls):
    x, a, masks = _images()
    # rank accuracy: the K-th highest relevance is positive, so no tie at zero decides Quantus's order
    positives = (a.flatten(1) > 0).sum(1)
    assert (masks.flatten(1).sum(1) < positives).all()
    theirs = _quantus(QUANTUS[cls](abs=False, normalise=False, disable_warnings=True), x, a, masks)
    ours = cls()(x, None, a, masks=masks)
    assert ours.shape == (len(x),) and ours.dtype == torch.float32
    torch.testing.assert_close(ours.double(), theirs, rtol=1e-6, atol=0)
    assert len(set(theirs.tolist())) > 1  # the samples differ, so a constant answer would fail
    if cls is PointingGame:
        assert theirs.tolist() == [1.0, 0.0] * 3  # the masks were built to cover the maximum or to avoid it


def test_the_metrics_declare_masks_and_are_registered():
    for cls, name in zip(LOCALISATION, ("relevance_mass", "relevance_rank", "pointing_game")):
        assert metric_class(name) is cls and METRICS[name] is cls
        assert cls.uses_masks and not cls.requires_model and cls.direction == "maximize"
    assert Sparseness.uses_masks is False  # the default: other metrics take no masks


# ---------------------------------------------------------------- relevance mass


def test_relevance_mass_inside_outside_uniform_and_zero():
    x = torch.randn(4, 1, 4, 4)
    masks = torch.zeros(4, 4, 4, dtype=torch.bool)
    masks[:, :2, :] = True  # the top half: 8 of 16 pixels
    masks[3] = False
    masks[3, 0, :3] = True  # 3 of 16 pixels
    a = torch.zeros(4, 1, 4, 4)
    a[0, 0, :2, :] = torch.rand(2, 4) + 0.1  # all inside
    a[1, 0, 2:, :] = torch.rand(2, 4) + 0.1  # all outside
    a[2] = 1.0  # uniform
    a[3] = 2.5  # uniform, a smaller mask
    scores = RelevanceMassAccuracy()(x, None, a, masks=masks)
    torch.testing.assert_close(scores, torch.tensor([1.0, 0.0, 0.5, 3 / 16]))
    assert RelevanceMassAccuracy()(x, None, torch.zeros_like(a), masks=masks).tolist() == [0.0] * 4


def test_relevance_mass_clips_negative_relevance():
    """Negative relevance outside the mask is not counted against the map."""
    x = torch.randn(1, 1, 2, 2)
    masks = torch.tensor([[[True, False], [False, False]]])
    a = torch.tensor([[[[3.0, 1.0], [-5.0, 0.0]]]])
    assert RelevanceMassAccuracy()(x, None, a, masks=masks).item() == pytest.approx(3 / 4)
    only_negative_outside = torch.tensor([[[[3.0, -1.0], [-5.0, -2.0]]]])
    assert RelevanceMassAccuracy()(x, None, only_negative_outside, masks=masks).item() == pytest.approx(1.0)


# ---------------------------------------------------------------- rank accuracy and pointing game


def test_rank_accuracy_counts_the_top_k_in_the_mask():
    x = torch.randn(2, 6)
    a = torch.tensor([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    masks = torch.tensor([[1, 0, 1, 0, 0, 1], [1, 0, 1, 0, 0, 1]], dtype=torch.bool)
    # K = 3; top three of row 0: positions 0, 1, 2 (two in the mask); of row 1: 5, 4, 3 (one in the mask)
    torch.testing.assert_close(RelevanceRankAccuracy()(x, None, a, masks=masks), torch.tensor([2 / 3, 1 / 3]))


def test_rank_accuracy_shares_tied_places_whatever_the_masks_position():
    """A tie at the K-th value shares the remaining places in proportion: a constant map scores K / n wherever the
    mask lies, and a tie that straddles the mask counts half."""
    x = torch.randn(3, 8)
    masks = torch.zeros(3, 8, dtype=torch.bool)
    masks[0, :2] = True
    masks[1, -2:] = True
    masks[2, [0, 1]] = True
    a = torch.zeros(3, 8)
    a[2] = torch.tensor([9.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])  # K = 2: position 0, then 1 or 3 tied
    scores = RelevanceRankAccuracy()(x, None, a, masks=masks)
    torch.testing.assert_close(scores, torch.tensor([2 / 8, 2 / 8, (1 + 0.5) / 2]))


def test_pointing_game_hits_and_misses():
    x = torch.randn(3, 1, 3, 3)
    masks = torch.zeros(3, 3, 3, dtype=torch.bool)
    masks[:, 0, 0] = True
    a = torch.rand(3, 1, 3, 3) * 0.5
    a[0, 0, 0, 0] = 1.0  # the maximum inside
    a[1, 0, 2, 2] = 1.0  # the maximum outside
    a[2, 0, 0, 0] = a[2, 0, 1, 1] = 1.0  # tied maxima, one inside: a hit, as in Quantus
    assert PointingGame()(x, None, a, masks=masks).tolist() == [1.0, 0.0, 1.0]


# ---------------------------------------------------------------- channels and mask shapes


def test_channels_are_summed_per_pixel_before_scoring():
    x = torch.randn(1, 3, 2, 2)
    a = torch.zeros(1, 3, 2, 2)
    a[0, 0, 0, 0] = 5.0  # the largest single element, outside the mask
    a[0, 1, 1, 1] = a[0, 2, 1, 1] = 3.0  # the largest pixel (6), inside the mask
    masks = torch.tensor([[[False, False], [False, True]]])
    assert PointingGame()(x, None, a, masks=masks).item() == 1.0
    assert RelevanceMassAccuracy()(x, None, a, masks=masks).item() == pytest.approx(6 / 11)
    one_channel = a.sum(1, keepdim=True)
    for cls in LOCALISATION:
        assert torch.equal(cls()(x, None, a, masks=masks), cls()(x[:, :1], None, one_channel, masks=masks))


def test_mask_shapes_of_an_image_give_the_same_scores():
    x, a, masks = _images(batch=4, seed=1)
    a = a.expand(-1, 3, -1, -1) * torch.tensor([1.0, 0.5, 2.0]).view(1, 3, 1, 1)
    x = x.expand(-1, 3, -1, -1)
    per_channel = torch.zeros(4, 3, 10, 10)
    per_channel[:, 1] = masks[:, 0].float()  # one channel true marks the pixel
    for cls in LOCALISATION:
        reference = cls()(x, None, a, masks=masks[:, 0])
        assert torch.equal(cls()(x, None, a, masks=masks), reference)
        assert torch.equal(cls()(x, None, a, masks=per_channel), reference)
    assert torch.equal(position_masks(per_channel, x), masks.flatten(1))


def test_tokens_and_embeddings_take_one_mask_row_per_sample():
    masks = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 1]])
    tokens = torch.randint(0, 9, (2, 4))
    a = torch.tensor([[2.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    assert RelevanceMassAccuracy()(tokens, None, a, masks=masks).tolist() == [1.0, 0.0]
    embeddings = torch.randn(2, 4, 3)
    spread = a.unsqueeze(-1).expand(-1, -1, 3) / 3
    torch.testing.assert_close(RelevanceMassAccuracy()(embeddings, None, spread, masks=masks), torch.tensor([1.0, 0.0]))


def test_a_sample_scores_the_same_alone_and_in_a_batch():
    x, a, masks = _images(seed=2)
    for cls in LOCALISATION:
        batch = cls()(x, None, a, masks=masks)
        assert torch.equal(cls()(x[3:4], None, a[3:4], masks=masks[3:4]), batch[3:4])


# ---------------------------------------------------------------- bad masks


def test_a_mask_of_the_wrong_shape_is_refused_with_the_shapes_it_takes():
    x, a, masks = _images(batch=2)
    with pytest.raises(ValueError, match=r"masks must be a tensor of shape .*\(2, 10, 10\).*got \(2, 1, 10, 9\)"):
        PointingGame()(x, None, a, masks=masks[..., :9])
    with pytest.raises(ValueError, match=r"got \(3, 1, 10, 10\)"):
        RelevanceMassAccuracy()(x, None, a, masks=torch.cat([masks, masks[:1]]))
    with pytest.raises(ValueError, match="got ndarray"):
        position_masks(masks.numpy(), x)


def test_an_empty_mask_is_refused_naming_the_sample():
    x, a, masks = _images(batch=3)
    masks[1] = False
    with pytest.raises(ValueError, match=r"sample 1's mask has no true pixel: .*at least one true pixel"):
        RelevanceRankAccuracy()(x, None, a, masks=masks)
    with pytest.raises(ValueError, match="sample 0's mask has no true position"):
        position_masks(torch.zeros(2, 5), torch.randn(2, 5))


def test_masks_are_required():
    x, a, masks = _images(batch=2)
    with pytest.raises(ValueError, match="pass masks="):
        RelevanceMassAccuracy()(x, None, a)
