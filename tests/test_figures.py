"""Figures: samples of different classes, inputs shown as they looked, every input kind drawn, sizes readable."""

import pytest
import torch
from PIL import Image

from tuner.figures._heatmaps import Row, Samples, comparison_figure, display_images, distinct_labels, trial_figure


def test_the_shown_samples_have_different_labels_where_the_data_allows():
    labels = [3, 3, 3, 1, 1, 2, 5, 5]
    chosen = distinct_labels(labels, 4)
    assert len(chosen) == 4 and len({labels[i] for i in chosen}) == 4
    two_classes = distinct_labels([0, 0, 0, 1, 1], 4)  # two classes only: both shown, then other samples
    assert len(set(two_classes)) == 4 and {[0, 0, 0, 1, 1][i] for i in two_classes} == {0, 1}
    assert distinct_labels([7, 7], 4) == [0, 1]  # fewer samples than asked


def test_images_are_shown_as_they_looked_before_normalisation():
    torch.manual_seed(0)
    pixels = torch.rand(2, 3, 5, 5)  # the photo, 0..1
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    normalised = (pixels - mean.reshape(1, 3, 1, 1)) / std.reshape(1, 3, 1, 1)
    low, high = (0 - mean) / std, (1 - mean) / std  # black and white after normalisation (the z-box bounds)
    shown = display_images(normalised, (low.reshape(1, 3, 1, 1), high.reshape(1, 3, 1, 1)))
    assert shown.shape == (2, 5, 5, 3)
    assert torch.allclose(torch.from_numpy(shown), pixels.permute(0, 2, 3, 1), atol=1e-5)
    stretched = display_images(normalised)  # bounds unknown: each image spans 0..1
    assert stretched.reshape(2, -1).min(1).tolist() == [0.0, 0.0]
    assert pytest.approx(stretched.reshape(2, -1).max(1).tolist()) == [1.0, 1.0]


KINDS = {
    "grayscale": (torch.randn(4, 1, 16, 16), None),
    "rgb": (torch.randn(3, 3, 32, 32), None),
    "sequence of token ids": (torch.randint(0, 50, (4, 12)), torch.randn(4, 12)),
    "tabular": (torch.randn(2, 7), None),
    "embeddings": (torch.randint(0, 50, (2, 9)), torch.randn(2, 9, 6)),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_input_kind_gives_readable_figures(kind, tmp_path):
    inputs, attributions = KINDS[kind]
    attributions = torch.randn(inputs.shape) if attributions is None else attributions
    samples = Samples(inputs, list(range(len(inputs))), list(range(len(inputs))))
    path = trial_figure(
        samples,
        attributions,
        tmp_path / "trial.png",
        title="trial 3 · X · AbPC = 0.5000",
        scores=[0.5] * len(inputs),
        details=["epsilon = 0.1"],
    )
    with Image.open(path) as image:
        assert image.width >= 800 and image.width == image.height  # square, readable in the dashboard's card
    rows = [Row("default", attributions, [0.1] * len(inputs), "AbPC 0.1"), Row("best", 2 * attributions)]
    path = comparison_figure(samples, rows, tmp_path / "heatmaps.png", title="t")
    with Image.open(path) as image:
        assert image.width >= 800 and image.height > 300


@pytest.mark.parametrize("n", [1, 4, 8])
@pytest.mark.parametrize("aspect", [0.5, 1.0, 2.0])
def test_a_trial_figures_image_panels_keep_the_images_shape_and_never_overlap(n, aspect):
    import matplotlib.pyplot as plt

    from tuner.figures._heatmaps import _image_panels

    fig = plt.figure(figsize=(10, 10))
    tops, maps, bars, details = _image_panels(fig, n, aspect)
    panels = [*tops, *maps, *bars]
    boxes = [ax.get_position() for ax in [*panels, details]]
    assert all(0 <= b.x0 < b.x1 <= 1 and 0 <= b.y0 < b.y1 <= 0.9 for b in boxes)  # inside, under the title
    for ax in [*tops, *maps]:  # the axes have the image's shape, so it fills them (a square figure)
        box = ax.get_position()
        assert box.height == pytest.approx(aspect * box.width)
    for i, first in enumerate(panels):
        for second in panels[i + 1 :]:
            a, b = first.get_position(), second.get_position()
            assert min(a.x1, b.x1) <= max(a.x0, b.x0) or min(a.y1, b.y1) <= max(a.y0, b.y0)
    assert details.get_position().y1 < min(bar.get_position().y0 for bar in bars)  # the details under the bars
    plt.close(fig)
