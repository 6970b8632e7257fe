"""Evidence masks through tune(): they follow their samples, bad masks are refused before any study exists, the
localisation metrics join the panel and may be the objective, and the verdict says whether the best configuration
puts its relevance on the known evidence."""

import numpy as np
import pytest
import torch
from helpers import run_tune
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from explainers import LRPUniformEpsilon
from tuner.evidence._report import write_report
from tuner.evidence._verdict import known_evidence_line, report_lines
from tuner.figures._heatmaps import Row, Samples, comparison_figure, mask_edges
from tuner.inputs._data import fixed_samples

SIDE = 8


def _box_model(box: torch.Tensor) -> nn.Module:
    """A linear classifier that reads only the pixels of ``box`` (positive weights there, zero elsewhere): every
    positive input's relevance lies inside the box."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 3, bias=False)).eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.rand(3, SIDE * SIDE) * box.flatten())
    return model


def _data(n: int = 12):
    box = torch.zeros(SIDE, SIDE, dtype=torch.bool)
    box[2:6, 1:5] = True
    inputs = 0.5 + 0.5 * torch.rand(n, 1, SIDE, SIDE)  # positive: relevance x_i w_i / z has the weight's sign
    return box, inputs, torch.arange(n) % 3, box.expand(n, SIDE, SIDE).clone()


def test_masks_follow_their_samples_from_tensors_and_from_a_dataset():
    _, inputs, labels, _ = _data()
    masks = torch.zeros(len(inputs), SIDE, SIDE, dtype=torch.bool)
    for index in range(len(inputs)):  # each sample's mask marks its own index as a pixel
        masks[index].view(-1)[index] = True
    model = _box_model(torch.ones(SIDE, SIDE))

    class Triples(Dataset):
        def __len__(self):
            return len(inputs)

        def __getitem__(self, index):
            return inputs[index], int(labels[index]), masks[index]

    for data in ((inputs, labels, masks), Triples()):
        samples = fixed_samples(data, model, 5, seed=3, device=torch.device("cpu"), n_holdout=4)
        for x, m in ((samples.inputs, samples.masks), (samples.holdout_inputs, samples.holdout_masks)):
            index = [int((inputs == row).flatten(1).all(1).nonzero()) for row in x]  # where each sample came from
            assert [int(mask.flatten().nonzero()) for mask in m] == index


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda masks: masks[:, :4], "shape"),
        (lambda masks: masks[:-1], "12 inputs but 11 masks"),
        (lambda masks: torch.cat([torch.zeros_like(masks[:1]), masks[1:]]), "no true"),
    ],
)
def test_a_bad_mask_is_refused_before_any_study_exists(change, message, tmp_path):
    box, inputs, labels, masks = _data()
    storage = tmp_path / "s.db"
    with pytest.raises(ValueError, match=message):
        run_tune(
            LRPUniformEpsilon,
            _box_model(box),
            (inputs, labels, change(masks)),
            n_samples=12,
            n_holdout=0,
            storage=f"sqlite:///{storage}",
        )
    assert not storage.exists()


def test_an_objective_that_needs_masks_is_refused_without_them_and_no_study_is_created(tmp_path):
    box, inputs, labels, _ = _data()
    storage = tmp_path / "s.db"
    with pytest.raises(ValueError, match=r"RelevanceMassAccuracy scores maps against evidence masks.*--masks DIR"):
        run_tune(
            LRPUniformEpsilon,
            _box_model(box),
            (inputs, labels),
            metric="relevance_mass",
            storage=f"sqlite:///{storage}",
        )
    assert not storage.exists()


def test_on_a_model_that_reads_only_the_box_every_method_puts_all_relevance_inside(tmp_path):
    box, inputs, labels, masks = _data()
    model = _box_model(box)
    result = run_tune(
        LRPUniformEpsilon,
        model,
        (inputs, labels, masks),
        n_trials=2,
        n_samples=6,
        show_progress_bar=False,
        panel=["morf"],
        panel_min_seconds=5,
    )
    write_report(result, model, tmp_path, study_name="s", storage=None)
    table = result.known_evidence()
    assert list(table["against"]) == ["default of its variant"] + ["reference row"] * (len(table) - 1)
    assert len(table) > 1
    assert table["best"].iloc[0] == pytest.approx(1.0, abs=1e-6)  # the model reads nothing outside the box
    assert table["other"].to_numpy() == pytest.approx(np.ones(len(table)), abs=1e-6)
    line = known_evidence_line(result)
    assert line.startswith("known evidence (relevance mass") and "6 held-out samples" in line
    assert "no clear difference" in line and "better" not in line and "worse" not in line
    lines = report_lines(result, [str(tmp_path / "summary.csv")])
    assert any(text.startswith("known evidence") for text in lines) and max(map(len, lines)) <= 120
    assert (tmp_path / "known_evidence.csv").exists()
    panel = result.panel_details()
    assert {"RelevanceMassAccuracy", "RelevanceRankAccuracy", "PointingGame"} <= set(panel.scores.columns)
    assert (panel.scores["RelevanceMassAccuracy"] > 1 - 1e-6).all()


def test_a_reference_row_that_puts_more_relevance_on_the_evidence_is_named_and_the_best_called_worse(tmp_path):
    """A linear model that reads every pixel, the box's more strongly, on inputs that are dim inside the box: LRP's
    relevance x_i w_i falls mostly outside, Saliency's |w_i| mostly inside. Both masses are known in closed form."""
    box, inputs, labels, masks = _data(16)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 3, bias=False)).eval()
    with torch.no_grad():
        model[1].weight.copy_((0.2 + torch.rand(3, SIDE * SIDE)) * (1 + 4 * box.flatten()))
    inputs = torch.where(box, 0.05, 1.0) * (0.5 + torch.rand(16, 1, SIDE, SIDE))
    result = run_tune(
        LRPUniformEpsilon,
        model,
        (inputs, labels, masks),
        n_trials=1,
        n_samples=8,
        show_progress_bar=False,
        panel_budget=0,
        explainer_kwargs={"epsilon": 1e-9},
    )
    write_report(result, model, tmp_path, study_name="s", storage=None)
    table = result.known_evidence().set_index("method")
    x, y = result.holdout.inputs.flatten(1), result.holdout.targets
    w = model[1].weight[y].detach()
    inside = box.flatten()
    lrp = ((x * w)[:, inside].sum(1) / (x * w).sum(1)).mean()
    saliency = (w[:, inside].sum(1) / w.sum(1)).mean()
    assert lrp < 0.5 < saliency  # the construction works as described
    assert table.loc["LRPUniformEpsilon default", "best"] == pytest.approx(float(lrp), rel=1e-4)
    row = table.loc["Saliency (captum, no reference)"]
    assert row["other"] == pytest.approx(float(saliency), rel=1e-4)
    assert row["diff"] == pytest.approx(float(lrp - saliency), rel=1e-3) and row["CI high"] < 0
    assert "vs Saliency" in known_evidence_line(result) and " worse" in known_evidence_line(result)


def test_relevance_mass_can_be_one_objective_of_a_multi_objective_study():
    box, inputs, labels, masks = _data()
    result = run_tune(
        LRPUniformEpsilon,
        _box_model(box),
        (inputs, labels, masks),
        metric=["abpc", "relevance_mass"],
        n_trials=3,
        n_samples=6,
        show_progress_bar=False,
        panel_budget=0,
    )
    front = result.pareto_front()
    assert list(front.columns[:2]) == ["AbPC", "RelevanceMassAccuracy"]
    assert (front["RelevanceMassAccuracy"] > 1 - 1e-6).all()  # the model reads only the box


def test_the_figure_outlines_each_samples_evidence(tmp_path):
    box, inputs, labels, masks = _data(4)
    maps = torch.rand(4, 1, SIDE, SIDE)
    plain = Samples(inputs, labels.tolist())
    outlined = Samples(inputs, labels.tolist(), masks=masks)
    for name, samples in (("plain.png", plain), ("outlined.png", outlined)):
        comparison_figure(samples, [Row("method", maps)], tmp_path / name)
    green = []
    for name in ("plain.png", "outlined.png"):
        with Image.open(tmp_path / name) as image:
            pixels = np.asarray(image.convert("RGB")).astype(int)
        # the outline's green: well above red and blue (the maps are red/blue/white, the inputs grey)
        green.append(int(((pixels[..., 1] - pixels[..., 0] > 60) & (pixels[..., 1] - pixels[..., 2] > 60)).sum()))
    assert green[0] == 0 and green[1] > 100


def test_the_outline_runs_along_pixel_edges():
    one = torch.zeros(3, 3, dtype=torch.bool)
    one[1, 2] = True  # the pixel centred at x=2, y=1 spans x 1.5..2.5, y 0.5..1.5
    edges = sorted(tuple(sorted(segment)) for segment in mask_edges(one))
    assert edges == [
        ((1.5, 0.5), (1.5, 1.5)),
        ((1.5, 0.5), (2.5, 0.5)),
        ((1.5, 1.5), (2.5, 1.5)),
        ((2.5, 0.5), (2.5, 1.5)),
    ]
    two = torch.zeros(3, 3, dtype=torch.bool)
    two[0, 0:2] = True  # a 1x2 bar: 6 unit edges, none between its two pixels
    assert len(mask_edges(two)) == 6 and ((0.5, -0.5), (0.5, 0.5)) not in [tuple(s) for s in mask_edges(two)]
