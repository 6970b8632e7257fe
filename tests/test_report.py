"""heatmaps.png's rows: a best equal to its default drawn once and labelled so, the captum rows, a multi-objective
study's Pareto configurations; the shown samples' scores are the study's own per-sample scores."""

import io

import pytest
import torch
from captum.attr import Saliency
from helpers import run_tune
from PIL import Image
from torch import nn

from explainers import LRPUniformEpsilon
from tuner.evidence._reference import CaptumExplainer, choose_ig_steps
from tuner.evidence._report import _figure_rows, write_report
from tuner.search._phases import recording


def _model_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3)).eval()
    return model, torch.randn(12, 1, 8, 8), torch.arange(12) % 3


def test_a_best_equal_to_its_default_is_one_row_and_scores_are_the_study_s(tmp_path):
    model, inputs, labels = _model_and_data()
    result = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=1, n_samples=6, show_progress_bar=False)
    table = write_report(result, model, tmp_path, study_name="s", storage=None)
    samples, rows = _figure_rows(result, model, table, {})
    names = [row.name for row in rows]
    assert names == ["LRPUniformEpsilon default = best"]  # one trial: the best is the default, drawn once
    default = result.study.trials[0]
    base = result.space.variants["LRPUniformEpsilon"]
    from tuner.search._objective import configuration_key

    assert configuration_key(base) in result.objective.shown_attributions  # kept by the trial, reused here
    assert torch.allclose(rows[0].attributions, result.objective._shown(base))  # the trial's kept maps = fresh ones
    assert rows[0].scores == [default.intermediate_values[i] for i in result.objective.shown]
    assert {int(label) for label in samples.labels} == {0, 1, 2}  # every class of the 3 among the 4 shown
    with Image.open(tmp_path / "heatmaps.png") as image:
        assert image.width >= 800
    name = "Saliency (captum, no reference)"
    saliency = CaptumExplainer(Saliency(model))
    with_captum = _figure_rows(result, model, table, {name: saliency})[1]
    assert with_captum[-1].name == name  # a reference row after the LRP rows, scored on the shown samples alone
    x, y = result.objective.inputs[result.objective.shown], result.objective.targets[result.objective.shown]
    expected = result.objective.metric.evaluate(x, y, saliency.attribute(x, y))
    assert with_captum[-1].scores == pytest.approx(expected.tolist(), abs=1e-6)


def test_a_multi_objective_report_shows_the_pareto_configurations(tmp_path):
    model, inputs, labels = _model_and_data()
    result = run_tune(
        LRPUniformEpsilon,
        model,
        (inputs, labels),
        metric=["abpc", "morf"],
        n_trials=4,
        n_samples=6,
        show_progress_bar=False,
        sampler="random",
    )
    table = write_report(result, model, tmp_path, study_name="s", storage=None, baselines=False)
    assert (tmp_path / "pareto.csv").is_file()
    _, rows = _figure_rows(result, model, table, {})
    pareto = [row.name for row in rows if row.name.startswith("Pareto")]
    assert pareto == [f"Pareto: trial {t.number}" for t in sorted(result.study.best_trials, key=lambda t: t.number)]
    assert not any("captum" in name for name in table.index)  # baselines=False: no captum rows


@pytest.mark.parametrize("n_steps_features", [(32, 256), (32, 3 * 32 * 32), (16, 3 * 224 * 224)])
@pytest.mark.parametrize("device", ["cpu", "meta"])  # "meta" stands for an accelerator: no memory is allocated
def test_integrated_gradients_steps_follow_the_input_size(n_steps_features, device):
    from tuner.evidence._reference import IG_BUDGET, IG_CPU_BUDGET, ig_settings

    n_steps, features = n_steps_features
    settings = ig_settings(torch.zeros(16, features, device=device))
    budget = IG_CPU_BUDGET if device == "cpu" else IG_BUDGET
    assert settings["n_steps"] == n_steps
    batch = settings["internal_batch_size"]
    assert 16 <= batch <= 16 * n_steps  # at least the inputs (captum's minimum), at most all interpolated inputs
    assert batch == 16 or batch * features <= budget  # above the minimum only within the device's budget


def test_integrated_gradients_batches_fewer_photos_on_a_cpu():
    from tuner.evidence._reference import ig_settings

    photos = torch.zeros(16, 3, 224, 224)
    on_cpu, on_accelerator = ig_settings(photos), ig_settings(photos.to("meta"))
    assert on_cpu["n_steps"] == on_accelerator["n_steps"] == 16
    assert on_cpu["internal_batch_size"] == 16 < on_accelerator["internal_batch_size"]  # batches of 8 were 2x faster


def test_reference_rows_are_scored_on_held_out_samples_only_and_the_estimate_comes_first(tmp_path):
    model, inputs, labels = _model_and_data()
    result = run_tune(LRPUniformEpsilon, model, (inputs, labels), n_trials=2, n_samples=6, show_progress_bar=False)
    stream = io.StringIO()
    with recording(stream) as times:
        table = write_report(result, model, tmp_path, study_name="s", storage=None)
    references = [name for name in table.index if "captum" in name]
    assert len(references) == 3
    assert table.loc[references, "default"].isna().all()  # no tuned-sample column for a reference row
    assert table.loc[references, "default (held-out)"].notna().all()
    steps = result.study.user_attrs["ig_steps"]
    assert f"IntegratedGradients (captum, zero reference, {steps} steps)" in references  # its steps in its name
    said = stream.getvalue()
    assert said.index("report: held-out scores ~") < said.index("held-out scores ...")  # said before it starts
    assert "held-out scores" in times.estimates and "reference rows" in times.estimates
    assert "[estimated" in times.summary()


class _Step(nn.Module):
    """f(x) = sigmoid(sharpness (w·x - 1/2)): along IG's path from 0 the gradient is a narrow peak, which few
    quadrature points miss."""

    def __init__(self, sharpness: float):
        super().__init__()
        self.sharpness = sharpness

    def forward(self, x):
        z = torch.sigmoid(self.sharpness * (x.flatten(1).mean(1, keepdim=True) - 0.5))
        return torch.cat([z, -z], 1)


def test_integrated_gradients_takes_more_steps_where_few_miss_its_completeness():
    x, y = torch.ones(4, 1, 4, 4) * torch.linspace(0.8, 1.2, 4)[:, None, None, None], torch.zeros(4, dtype=torch.long)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    assert choose_ig_steps(linear, x, y).n_steps == 8  # exact at any number of steps
    sharp = choose_ig_steps(_Step(40.0), x, y)
    assert sharp.n_steps > 8
    from captum.attr import IntegratedGradients

    _, delta = IntegratedGradients(_Step(40.0)).attribute(x, target=y, n_steps=8, return_convergence_delta=True)
    gap = (_Step(40.0)(x) - _Step(40.0)(torch.zeros_like(x)))[:, 0].abs().mean()
    assert delta.abs().mean() > 0.01 * gap  # 8 steps do miss the 1 % error here
    assert sharp.relative_error <= 0.01 or sharp.n_steps == 64


def test_with_the_panel_off_no_panel_phase_or_line_is_printed(tmp_path):
    from tuner.evidence._verdict import report_lines

    model, inputs, labels = _model_and_data()
    result = run_tune(
        LRPUniformEpsilon, model, (inputs, labels), n_trials=2, n_samples=6, show_progress_bar=False, panel_budget=0
    )
    stream = io.StringIO()
    with recording(stream) as times:
        write_report(result, model, tmp_path, study_name="s", storage=None, baselines=False)
    assert "robustness panel" not in stream.getvalue() and "robustness panel" not in times.summary()
    assert "panel" not in stream.getvalue().split("report:")[1].splitlines()[0]  # the estimate names no panel
    lines = report_lines(result, [str(tmp_path / "summary.csv")])
    assert not any("robustness panel" in line or "τ" in line for line in lines)
    assert not (tmp_path / "panel.csv").exists()
    assert max(map(len, lines)) <= 120
