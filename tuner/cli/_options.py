"""The one mapping from ``run``'s flags (and the preset's defaults) to ``tune()``'s options."""

from __future__ import annotations

import argparse
from typing import Any

from .._options import Budget, Objective, Report, Search, Storage


def metric_names(args: argparse.Namespace) -> list[str]:
    """The objective's metrics: ``--objectives`` (comma-separated) or ``--metric``."""
    return [name.strip() for name in (args.objectives or args.metric).split(",") if name.strip()]


def objective(args: argparse.Namespace, preset: Any) -> Objective:
    """The objective: the metrics, with the preset's settings (those the metrics take), then ``--metric-kwargs``,
    then ``--baseline``. The Objective refuses an unknown metric or a setting none of the metrics takes."""
    from metrics import metric_class

    names = metric_names(args)
    given = {**args.metric_kwargs, **({"baseline": args.baseline} if args.baseline else {})}
    accepted = frozenset().union(*(metric_class(name).accepted_settings() for name in names)) if names else set()
    preset_settings = {k: v for k, v in getattr(preset, "metric_kwargs", {}).items() if k in accepted}
    if "baseline" in given and given["baseline"] != "blur":
        preset_settings.pop("blur_sigma", None)  # a preset's blur width belongs to a blur baseline
    return Objective(metric=names if len(names) > 1 else names[0], metric_kwargs={**preset_settings, **given})


def budget_settings(args: argparse.Namespace, preset: Any) -> dict[str, Any]:
    """``n_trials``, ``n_samples`` and ``batch_size``: the flags where given, else the preset's defaults."""
    given = {"n_trials": args.n_trials, "n_samples": args.n_samples, "batch_size": args.batch_size}
    return {**preset.defaults, **{k: v for k, v in given.items() if v is not None}}


def options(args: argparse.Namespace, objective: Objective, settings: dict[str, Any], n_holdout: int) -> dict[str, Any]:
    """``tune()``'s option groups from the flags: ``settings`` are :func:`budget_settings` (with ``n_samples`` cut to
    the data that could be loaded) and ``n_holdout`` the samples held out."""
    return {
        "objective": objective,
        "budget": Budget(
            n_trials=settings["n_trials"], timeout=args.timeout, n_samples=settings["n_samples"], n_holdout=n_holdout
        ),
        "search": Search(
            sampler=args.sampler,
            pruner=args.pruner,
            seed=args.seed,
            batch_size=settings["batch_size"],
            trials_together=args.trials_together,
        ),
        "report": Report(
            panel=False if args.no_panel else args.panel,
            panel_budget=0.0 if args.no_panel else args.panel_budget,
            panel_min_seconds=args.panel_min_seconds,
            reference_rows=not args.no_baselines,
            show_progress_bar=not args.no_progress,
        ),
        "storage": Storage(args.storage, heartbeat_interval=args.heartbeat),
    }


def preset_kwargs(preset: Any, classes: list[Any]) -> dict[str, Any]:
    """The preset's input bounds and canonizers, each passed only where one of the study's explainer ``classes``
    takes it (the bounds only matter to the box rule; ``tune()`` refuses a key that no selected class accepts)."""
    accepted = frozenset().union(*(cls.accepted_kwargs() for cls in classes))
    kwargs = {"low": preset.low, "high": preset.high, "zennit_canonizers": preset.canonizers() or None}
    return {name: value for name, value in kwargs.items() if name in accepted}
