"""tune(): an Optuna study over the explainers' search spaces, scored by a faithfulness metric.

This module only orchestrates; the study lives in :mod:`tuner._study`, the search strategies in
:mod:`tuner._strategies`, the trial budget in :mod:`tuner._budget`, the shared policy in :mod:`tuner._policy`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from torch import nn

from explainers import DEFAULT_EXPLAINERS, LRPBase, evaluation_mode
from metrics import METRICS, Metric, get_metric

from . import _policy
from ._budget import optimize
from ._checks import check_arguments, check_model, check_target_range
from ._data import Data, Samples, fixed_samples
from ._device import resolve_device
from ._fair import fair_sampler
from ._inert import held_at_default
from ._objective import Objective, TrialFailed
from ._panel import PanelSpec, panel_metrics
from ._phases import phase
from ._provenance import data_fingerprint, library_versions, model_fingerprint
from ._result import TuneResult
from ._space import SearchSpace
from ._storage import artifact_store, open_storage
from ._strategies import Pruner, Sampler, check_strategies, chunk_size, make_pruner, make_sampler, sampler_seed
from ._study import StudyMismatchError, enqueue_defaults, open_study, record_storage, save_note, study_note

__all__ = ["StudyMismatchError", "check_metric_kwargs", "resolve_device", "tune"]

logger = logging.getLogger("tuner")
ExplainerClasses = type[LRPBase] | Sequence[type[LRPBase]] | None
MetricSpec = str | Metric | Sequence[str | Metric]


def tune(
    explainer_cls: ExplainerClasses,
    model: nn.Module,
    data: Data,
    *,
    metric: MetricSpec = "abpc",
    n_trials: int = 30,
    n_samples: int | None = 16,
    sampler: Sampler = "tpe",
    pruner: Pruner = "wilcoxon",
    storage: str | None = None,
    study_name: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    batch_size: int = 16,
    timeout: float | None = None,
    show_progress_bar: bool = True,
    explainer_kwargs: dict[str, Any] | None = None,
    metric_kwargs: dict[str, Any] | None = None,
    n_heatmaps: int = 4,
    heartbeat_interval: int | None = 60,
    share_work: bool = True,
    n_holdout: int | None = None,
    drop_inert: bool = True,
    panel: PanelSpec = None,
) -> TuneResult:
    """Find the explainer configuration whose attributions score best under ``metric``.

    ``explainer_cls`` is one class, a list (searched together through a categorical ``explainer``
    parameter) or None for the four LRP variants. Every trial scores the same ``n_samples`` samples,
    ``batch_size`` at a time (with a pruner, in up to four chunks, so that it can stop a trial after each);
    the first trials are each variant's default configuration (and, for LRPLayerwise, the four variants'
    configurations). ``n_trials`` is the total of complete trials in the study (pruned and failed ones do not
    count), so running again with the same ``storage`` and ``study_name`` resumes it; several processes may
    share one study and together finish exactly ``n_trials``. ``explainer_kwargs`` (e.g. ``low``, ``high``,
    ``zennit_canonizers``) go to each class that accepts them.

    ``sampler`` and ``pruner`` are names (``tpe``, ``random``, ``grid``, ``gp``, ``cmaes``; ``wilcoxon``,
    ``median``, ``none``) or Optuna objects (``TPESampler(seed=1)``, ``WilcoxonPruner(p_threshold=0.05)``), which
    are used as given. ``metric_kwargs`` set the metric (e.g. ``baseline="min"``, ``blur_sigma=2``, ``n_steps=20``);
    for images that name no baseline, the perturbation baseline is a Gaussian blur (see
    :func:`tuner._policy.objective_settings`: a zero baseline would favour the zero-reference rows). The metric's
    settings belong to the study: resuming it with other settings is refused. ``metric`` may be a list: a
    multi-objective study whose result is a Pareto front (never pruned). ``n_holdout`` samples (default: as many as
    ``n_samples``, where the data has them) are never tuned on; the summary reports the default and the best
    configurations on them too. With ``drop_inert``, tunables whose extreme values give the same attributions up to
    scale are held at their default. ``share_work=False`` turns off what trials share (the metrics' unperturbed
    scores computed once, repeated configurations answered from the study): for benchmarks only. ``panel``: the
    robustness panel that ``TuneResult.panel()`` scores on the held-out samples (metric names, ``(name, settings)``
    pairs or Metric objects; None: :data:`tuner._panel.DEFAULT_PANEL`; False or []: none); checked here, scored
    only when asked.
    """
    check_model(model)
    check_arguments(
        n_trials=n_trials,
        n_samples=n_samples,
        batch_size=batch_size,
        seed=seed,
        timeout=timeout,
        n_heatmaps=n_heatmaps,
        heartbeat_interval=heartbeat_interval,
        n_holdout=n_holdout,
    )
    metric_list: list[str | Metric] = list(metric) if isinstance(metric, (list, tuple)) else [metric]  # type: ignore[list-item]
    _check_distinct(metric_list)
    check_strategies(sampler, pruner, len(metric_list))
    device = resolve_device(device, model)
    check_metric_kwargs(metric_list, metric_kwargs or {})
    model = model.to(device)
    with evaluation_mode(model):  # the model comes back in its mode, with its hooks and flags, also on error
        samples = fixed_samples(data, model, n_samples, seed, device, batch_size, n_holdout)
        objective_settings = _policy.objective_settings(samples.inputs, metric_kwargs)
        metrics = _policy.fit_baselines([_metric(m, model, objective_settings) for m in metric_list], samples.inputs)
        panel_list = panel_metrics(panel, model, samples.inputs)
        bases = _bases(explainer_cls, model, explainer_kwargs or {})
        for base in bases:
            base.check_inputs(samples.inputs[:1])  # inputs the model rejects fail here; trials skip the check
        check_target_range(torch.cat([samples.targets, samples.holdout_targets]), bases[0].n_classes)
        full_space = SearchSpace(bases)
        if sampler == "grid":
            full_space.grid()  # raises for several explainers, before any study exists

        study_attrs = _study_attrs(metrics, model, full_space, samples, seed)
        with warnings.catch_warnings():  # heartbeats, WilcoxonPruner and TPE's group are "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna_pruner = make_pruner(pruner, len(metrics))
            storage_obj = open_storage(storage, heartbeat_interval=heartbeat_interval)
            study = open_study(storage_obj, study_name, [m.direction for m in metrics], study_attrs, optuna_pruner)
        with phase("inert checks"):
            fixed = held_at_default(study, bases, samples.inputs, samples.targets, drop_inert)
        space = SearchSpace(bases, fixed=fixed)
        save_note(study, study_note(study, len(samples.inputs)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.sampler = fair_sampler(
                make_sampler(sampler, space, sampler_seed(seed, study, storage)), space, n_trials
            )
        artifacts_dir = record_storage(study, storage)
        trial_attrs = {key: study_attrs[key] for key in ("metric", "metric_settings", "model", "library_versions")}
        pruning = not isinstance(optuna_pruner, optuna.pruners.NopPruner)
        objective = Objective(
            space,
            metrics,
            samples.inputs,
            samples.targets,
            batch_size=chunk_size(batch_size, len(samples.inputs), pruning=pruning),
            trial_attrs=trial_attrs,
            artifacts=artifact_store(artifacts_dir) if artifacts_dir else None,
            storage=storage_obj,
            n_heatmaps=n_heatmaps,
            n_trials=n_trials if storage is not None else None,
            share_work=share_work,
        )
        holdout = _holdout_objective(space, metrics, samples, batch_size)
        enqueue_defaults(study, space, n_trials)
        if space.empty:
            logger.warning("nothing to tune: every tunable is inert on this model; evaluating the defaults only")
            n_trials = min(n_trials, len(space.initial_params()))
        with phase("trials"):
            optimize(
                study, objective, n_trials, timeout=timeout, show_progress_bar=show_progress_bar, catch=(TrialFailed,)
            )
        _check_completed(study)
        return TuneResult(study=study, space=space, objective=objective, holdout=holdout, panel_metrics=panel_list)


def _holdout_objective(
    space: SearchSpace, metrics: list[Metric], samples: Samples, batch_size: int
) -> Objective | None:
    """The objective that scores configurations on the held-out samples (none without held-out samples)."""
    if not len(samples.holdout_inputs):
        return None
    return Objective(
        space,
        metrics,
        samples.holdout_inputs,
        samples.holdout_targets,
        batch_size=batch_size,
        trial_attrs={},
        share_work=False,
    )


def _check_completed(study: optuna.Study) -> None:
    """Raise RuntimeError, with the recorded reasons, when no trial of the study completed."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        reasons = {str(t.user_attrs["fail_reason"]) for t in study.trials if "fail_reason" in t.user_attrs}
        raise RuntimeError(f"no trial completed; failures: {'; '.join(sorted(reasons)) or 'none recorded'}")


def _study_attrs(
    metrics: list[Metric], model: nn.Module, space: SearchSpace, samples: Samples, seed: int
) -> dict[str, Any]:
    """What the study records once: what is measured, on which model, with which libraries and space."""
    several = len(metrics) > 1
    return {
        "metric": [type(m).__name__ for m in metrics] if several else type(metrics[0]).__name__,
        "metric_settings": [m.settings() for m in metrics] if several else metrics[0].settings(),
        "model": model_fingerprint(model),
        "data": data_fingerprint(samples.inputs, samples.targets),
        "library_versions": library_versions(),
        "explainers": list(space.variants),
        "search_space": space.describe(),
        "n_samples": len(samples.inputs),
        "targets": samples.targets_from,
        "seed": seed,
    }


def _metric(metric: str | Metric, model: nn.Module, kwargs: dict[str, Any]) -> Metric:
    """A metric by name, with the ``metric_kwargs`` its class accepts (several metrics share one dict)."""
    if not isinstance(metric, str):
        return metric
    if metric not in METRICS:
        get_metric(metric)  # raises, listing the valid names
    accepted = METRICS[metric].accepted_settings()
    return get_metric(metric, model, **{k: v for k, v in kwargs.items() if k in accepted})


def _check_distinct(metrics: list[str | Metric]) -> None:
    """Each objective once: ``abpc,abpc`` would be a two-objective study of one metric."""
    names = [m if isinstance(m, str) else type(m).__name__ for m in metrics]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"each metric may be an objective only once; repeated: {', '.join(repeated)}")


def _bases(explainer_cls: ExplainerClasses, model: nn.Module, kwargs: dict[str, Any]) -> list[LRPBase]:
    """One base explainer per class, with the ``explainer_kwargs`` it accepts; with None, the default
    explainers that support the model."""
    classes: list[Any] = (
        list(DEFAULT_EXPLAINERS)
        if explainer_cls is None
        else (list(explainer_cls) if isinstance(explainer_cls, (list, tuple)) else [explainer_cls])
    )
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, LRPBase)):
            raise TypeError(f"explainer_cls must be LRP explainer classes, got {cls!r}")
    valid = frozenset().union(*(cls.accepted_kwargs() for cls in classes))
    unknown = sorted(set(kwargs) - valid)
    if unknown:  # a typo would otherwise be dropped silently and the study would search another space
        raise ValueError(
            f"explainer_kwargs {', '.join(map(repr, unknown))} are not parameters of "
            f"{', '.join(cls.__name__ for cls in classes)}; valid: {', '.join(sorted(valid))}"
        )
    bases = []
    for cls in classes:
        accepted = cls.accepted_kwargs()
        try:
            bases.append(cls(model, **{k: v for k, v in kwargs.items() if k in accepted}))
        except ValueError as error:
            if explainer_cls is not None or "needs a model" not in str(error):
                raise
            logger.warning("skipping %s: %s", cls.__name__, error)
    if not bases:
        raise ValueError("none of the explainers supports this model")
    return bases


def check_metric_kwargs(metric_list: list[str | Metric], kwargs: dict[str, Any]) -> None:
    """Raise ValueError for a ``metric_kwargs`` key that none of the named metrics takes (a typo would
    otherwise be dropped silently and the study would measure something else than asked)."""
    named = [METRICS[m] for m in metric_list if isinstance(m, str) and m in METRICS]
    if not named or len(named) < len(metric_list):
        return  # metric objects are built by the caller; an unknown name fails in _metric with the valid names
    accepted = frozenset().union(*(cls.accepted_settings() for cls in named))
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(
            f"metric_kwargs {', '.join(map(repr, unknown))} are not settings of "
            f"{', '.join(c.__name__ for c in named)}; valid: {', '.join(sorted(accepted))}"
        )
