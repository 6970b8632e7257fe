"""The objective's settings are a stated choice: named baselines, the preset's default and why, the study's
identity; IROF's segments from the input size; FaithfulnessCorrelation averaged over subset draws."""

import subprocess

import optuna
import pytest
import torch
from helpers import run_tune
from torch import nn

import studies
from metrics import IROF, AbPC, FaithfulnessCorrelation
from metrics._base import layout_of
from metrics.perturbation import BASELINES, make_baseline
from tuner import StudyMismatchError, tune
from tuner.cli import command_line
from tuner.evidence._reference import CAPTUM
from tuner.search._policy import objective_settings

optuna.logging.set_verbosity(optuna.logging.WARNING)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3)).eval()


def images(n: int = 6, side: int = 8) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(n, 1, side, side)


def test_every_named_baseline_and_what_it_is():
    x = images()
    layout = layout_of(x)
    assert set(BASELINES) == {"zero", "min", "mean", "blur", "uniform", "road"}
    assert torch.equal(make_baseline(x, "min", layout).flatten(), x.min().view(1))  # black: the data's lower bound
    uniform = make_baseline(x, "uniform", layout, baseline_seed=3)
    assert torch.equal(uniform, make_baseline(x, "uniform", layout, baseline_seed=3))  # seeded: reproducible
    assert not torch.equal(uniform, make_baseline(x, "uniform", layout, baseline_seed=4))
    assert bool(((uniform >= x.min()) & (uniform <= x.max())).all())
    wide, narrow = make_baseline(x, "blur", layout, blur_sigma=4.0), make_baseline(x, "blur", layout, blur_sigma=0.5)
    assert float((narrow - x).abs().mean()) < float((wide - x).abs().mean())
    with pytest.raises(ValueError, match="baseline must be one of"):
        AbPC(small_cnn(), baseline="black")
    with pytest.raises(ValueError, match="blur_sigma"):
        AbPC(small_cnn(), baseline="blur", blur_sigma=0)


def test_min_and_mean_are_the_datas_per_channel_not_each_samples():
    """The issue's definitions: "min" the data's lower bound, "mean" the data's mean, per channel (RGB black)."""
    torch.manual_seed(2)
    x = torch.randn(5, 3, 4, 4) + torch.arange(5.0).view(5, 1, 1, 1)  # samples with different ranges
    layout = layout_of(x)
    per_channel_min = torch.stack([x[:, c].min() for c in range(3)])
    per_channel_mean = torch.stack([x[:, c].mean() for c in range(3)])
    assert torch.equal(make_baseline(x, "min", layout).flatten(), per_channel_min)
    torch.testing.assert_close(make_baseline(x, "mean", layout).flatten(), per_channel_mean)
    data = x[:2]  # a metric fitted on other data takes its baseline from there, whatever the call's inputs
    metric = AbPC(small_cnn(), baseline="min").fit_baseline(data)
    assert metric.baseline_data is not None and torch.equal(metric.baseline_data, data)
    assert torch.equal(make_baseline(x[3:], "min", layout, data=data).flatten(), data.amin(dim=(0, 2, 3)))


def test_the_baseline_changes_the_score():
    """Not a decoration: the same attributions score differently under zero and min baselines."""
    model, x = small_cnn(), images()
    targets, relevance = torch.zeros(6, dtype=torch.long), torch.randn(6, 1, 8, 8)
    zero = AbPC(model, baseline="zero", n_steps=4)(x, targets, relevance)
    black = AbPC(model, baseline="min", n_steps=4)(x, targets, relevance)
    assert not torch.allclose(zero, black)


def test_image_objective_default_is_not_a_reference_rows_point():
    """For images the default baseline is a blur: 0 is the reference point of the zero-reference rows."""
    assert all("reference" in name for name in CAPTUM)
    zero_reference_rows = [name for name in CAPTUM if "zero reference" in name]
    assert zero_reference_rows, "the rows name their reference"
    assert objective_settings(images(side=16), None) == {"baseline": "blur", "blur_sigma": 2.0}
    assert objective_settings(images(side=224, n=1), None)["blur_sigma"] == 5.0
    assert objective_settings(images(), {"baseline": "min"}) == {"baseline": "min"}
    assert objective_settings(torch.randn(3, 5), None) == {"baseline": "zero"}  # tabular: the metrics' default
    for preset in ("digits", "resnet18"):  # one place decides the default baseline: no preset restates it
        assert "baseline" not in studies.get_preset(preset).metric_kwargs, preset


def test_resuming_with_other_metric_settings_is_refused(tmp_path):
    from explainers import LRPUniformEpsilon

    model, x = small_cnn(), images(8)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    options = {"storage": storage, "study_name": "s", "n_samples": 4, "show_progress_bar": False, "n_trials": 1}
    run_tune(LRPUniformEpsilon, model, x, metric_kwargs={"baseline": "min", "n_steps": 4}, **options)
    run_tune(LRPUniformEpsilon, model, x, metric_kwargs={"baseline": "min", "n_steps": 4, "batch_size": 3}, **options)
    with pytest.raises(StudyMismatchError, match="another metric settings") as error:
        run_tune(LRPUniformEpsilon, model, x, metric_kwargs={"baseline": "blur", "n_steps": 4}, **options)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="'n_step'.*not settings of AbPC"):
        run_tune(LRPUniformEpsilon, model, x, metric_kwargs={"n_step": 4}, **options)
    summary = optuna.get_all_study_summaries(storage)[0]
    assert summary.user_attrs["metric_settings"]["baseline"] == "min"


@pytest.mark.slow  # a subprocess of the command line
@pytest.mark.parametrize(
    ("argument", "said"),
    [
        (["--baseline", "black"], "invalid choice: 'black'"),
        (["--metric-kwargs", "n_step=4"], "'n_step' are not settings of AbPC"),
        (["--metric-kwargs", "n_steps"], "expected key=value"),
    ],
)
def test_cli_refuses_bad_objective_settings_in_one_line(argument, said, tmp_path):
    done = subprocess.run(
        command_line("run", *argument, storage=f"sqlite:///{tmp_path / 'db'}"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert said in done.stderr, done.stderr
    assert not (tmp_path / "db").exists()


def test_cli_reads_key_values():
    from tuner.cli._parser import _key_values

    assert _key_values("n_steps=20,blur_sigma=2.5, baseline=min") == {
        "n_steps": 20,
        "blur_sigma": 2.5,
        "baseline": "min",
    }


def test_irof_segments_follow_the_input_size():
    metric = IROF(small_cnn())
    assert metric.settings()["n_segments"].startswith("auto")
    assert metric.segments_for(16, 16) == 16 and metric.segments_for(224, 224) == 100 and metric.segments_for(4, 4) == 4
    assert IROF(small_cnn(), n_segments=7).segments_for(224, 224) == 7
    torch.manual_seed(0)
    x = torch.rand(4, 1, 16, 16)
    segments = IROF(small_cnn()).segment(x)
    distinct = {tuple(s.flatten().tolist()) for s in segments}
    assert len(distinct) == 4, "segments follow each image, not one fixed grid"
    fixed = IROF(small_cnn(), n_segments=100).segment(x)
    assert len({tuple(s.flatten().tolist()) for s in fixed}) == 1  # what the old fixed 100 did on 16×16 inputs


def test_faithfulness_correlation_averages_its_draws():
    model, x = small_cnn(), images()
    targets, relevance = torch.zeros(6, dtype=torch.long), torch.randn(6, 1, 8, 8)
    draws = [FaithfulnessCorrelation(model, n_runs=10, n_repeats=1, seed=s)(x, targets, relevance) for s in (5, 6, 7)]
    averaged = FaithfulnessCorrelation(model, n_runs=10, n_repeats=3, seed=5)(x, targets, relevance)
    torch.testing.assert_close(averaged, torch.stack(draws).mean(0), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="n_repeats"):
        FaithfulnessCorrelation(model, n_repeats=0)


def test_the_study_names_its_baseline_and_who_chose_it():
    from explainers import LRPUniformEpsilon
    from tuner import Budget, Objective, Report

    model, x = small_cnn(), images(8)
    fast = {"budget": Budget(n_trials=1, n_samples=4), "report": Report(show_progress_bar=False)}
    default = tune(LRPUniformEpsilon, model, x, objective=Objective("abpc", metric_kwargs={"n_steps": 4}), **fast)
    assert default.study.user_attrs["baseline"] == "blur (the study default for these inputs)"
    assert default.study.user_attrs["metric_settings"]["baseline"] == "blur"
    given = tune(
        LRPUniformEpsilon, model, x, objective=Objective("abpc", baseline="min", metric_kwargs={"n_steps": 4}), **fast
    )
    assert given.study.user_attrs["baseline"] == "min (given)"
    assert given.study.user_attrs["metric_settings"]["baseline"] == "min"
