"""tune()'s grouped options: each group checks itself when built, tune() takes at most ten options, and the
command line builds the same objects from its flags through one mapping."""

import dataclasses
import inspect
import types

import pytest

from tuner import Budget, Objective, Report, Search, Storage, tune
from tuner.cli import _options as cli_options
from tuner.cli._parser import parser


def test_tune_takes_grouped_options_after_its_three_positional_arguments():
    parameters = list(inspect.signature(tune).parameters.values())
    assert [p.name for p in parameters[:3]] == ["explainer_cls", "model", "data"]
    options = parameters[3:]
    assert len(options) <= 10
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in options)
    assert {"objective", "budget", "search", "report", "storage", "study_name", "explainer_kwargs"} <= {
        p.name for p in options
    }


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: Objective("abcp"), ValueError, "did you mean 'abpc'"),
        (lambda: Objective(["abpc", "abpc"]), ValueError, "only once"),
        (lambda: Objective("abpc", metric_kwargs={"n_step": 4}), ValueError, "'n_step'"),
        (lambda: Objective("abpc", baseline="black"), ValueError, "baseline must be one of"),
        (lambda: Objective("abpc", baseline="min", metric_kwargs={"baseline": "zero"}), ValueError, "once"),
        (lambda: Budget(n_trials=0), ValueError, "n_trials must be at least 1"),
        (lambda: Budget(n_trials=2.5), TypeError, "n_trials must be an integer"),
        (lambda: Budget(timeout=-1), ValueError, "timeout"),
        (lambda: Budget(n_samples=0), ValueError, "n_samples"),
        (lambda: Search(sampler="tpee"), ValueError, "unknown sampler"),
        (lambda: Search(pruner=object()), TypeError, "pruner must be a name"),
        (lambda: Search(batch_size=0), ValueError, "batch_size"),
        (lambda: Search(trials_together=0), ValueError, "trials_together must be at least 1"),
        (lambda: Search(trials_together=True), TypeError, "trials_together must be an integer"),
        (lambda: Report(n_heatmaps=-1), ValueError, "n_heatmaps"),
        (lambda: Report(panel=[("abcp", {})]), ValueError, "panel: unknown metric 'abcp'; did you mean 'abpc'"),
        (lambda: Storage(heartbeat_interval=0), ValueError, "heartbeat_interval"),
        (lambda: Storage(3), TypeError, "URL"),
    ],
)
def test_each_group_checks_its_fields_when_built(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_groups_are_frozen_values():
    budget = Budget(n_trials=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.n_trials = 5
    assert Budget(n_trials=4) == budget
    assert Objective("abpc", baseline="min").settings() == {"baseline": "min"}


def test_tune_refuses_a_flat_dict_for_a_group_before_any_work():
    with pytest.raises(TypeError, match="budget must be a tuner.Budget"):
        tune(None, object(), None, budget={"n_trials": 3})


def _flags(*argv: str):
    return parser().parse_args(["run", *argv])


def test_the_command_line_maps_every_run_flag_to_its_option():
    args = _flags(
        "--metric",
        "irof",
        "--baseline",
        "min",
        "--metric-kwargs",
        "n_segments=30",
        "--n-trials",
        "7",
        "--n-samples",
        "5",
        "--timeout",
        "90",
        "--sampler",
        "random",
        "--pruner",
        "median",
        "--seed",
        "3",
        "--batch-size",
        "2",
        "--no-baselines",
        "--no-progress",
        "--no-panel",
        "--storage",
        "sqlite:///mapped.db",
        "--heartbeat",
        "30",
    )
    preset = types.SimpleNamespace(defaults={"n_trials": 30, "n_samples": 16, "batch_size": 16}, metric_kwargs={})
    objective = cli_options.objective(args, preset)
    settings = cli_options.budget_settings(args, preset)
    options = cli_options.options(args, objective, settings, n_holdout=4)
    assert options["objective"] == Objective("irof", metric_kwargs={"n_segments": 30, "baseline": "min"})
    assert options["budget"] == Budget(n_trials=7, timeout=90.0, n_samples=5, n_holdout=4)
    assert options["search"] == Search(sampler="random", pruner="median", seed=3, batch_size=2)
    assert options["report"] == Report(
        panel=False, panel_budget=0.0, panel_min_seconds=60.0, reference_rows=False, show_progress_bar=False
    )
    assert options["storage"] == Storage("sqlite:///mapped.db", heartbeat_interval=30)
    assert set(options) <= set(inspect.signature(tune).parameters)


def test_the_command_line_fills_the_budget_from_the_preset_where_no_flag_is_given():
    preset = types.SimpleNamespace(defaults={"n_trials": 20, "n_samples": 12, "batch_size": 8}, metric_kwargs={})
    args = _flags("--objectives", "abpc,sparseness")
    options = cli_options.options(
        args, cli_options.objective(args, preset), cli_options.budget_settings(args, preset), 3
    )
    assert options["budget"] == Budget(n_trials=20, n_samples=12, n_holdout=3)
    assert options["search"].batch_size == 8
    assert options["objective"].metrics == ["abpc", "sparseness"]
    assert options["search"].sampler == "tpe"
    assert options["report"] == Report(panel_budget=0.3, panel_min_seconds=60.0)


def test_the_panel_budget_flags_map_to_the_report():
    preset = types.SimpleNamespace(defaults={"n_trials": 20, "n_samples": 12, "batch_size": 8}, metric_kwargs={})
    args = _flags("--panel-budget", "0.05", "--panel-min-seconds", "0")
    options = cli_options.options(
        args, cli_options.objective(args, preset), cli_options.budget_settings(args, preset), 3
    )
    assert options["report"] == Report(panel_budget=0.05, panel_min_seconds=0.0)
    for bad in (["--panel-budget", "-1"], ["--panel-min-seconds", "nan"]):
        with pytest.raises(SystemExit):
            _flags(*bad)
    with pytest.raises(ValueError, match="panel_budget must be a number of at least 0"):
        Report(panel_budget=-0.1)
