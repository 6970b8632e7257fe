"""tune(): an Optuna study over the explainers' search spaces, scored by a faithfulness metric.

This module only orchestrates; the study lives in :mod:`tuner.search._study`, the search strategies in
:mod:`tuner.search._strategies`, the trial budget in :mod:`tuner.search._budget`, the shared policy in
:mod:`tuner.search._policy`, the options in :mod:`tuner._options`.
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
from explainers.attnlrp import ImageClassifier, LRPAttn, TextClassifier
from metrics import Metric, get_metric, metric_class

from ._options import Budget, Objective, Report, Search, Storage
from .evidence._provenance import data_fingerprint, library_versions, model_fingerprint
from .evidence._result import TuneResult
from .evidence.panel._panel import panel_metrics
from .inputs._checks import check_model, check_target_range
from .inputs._data import Data, Samples, fixed_samples
from .inputs._device import resolve_device
from .search import _policy
from .search._budget import optimize
from .search._fair import fair_sampler
from .search._inert import held_at_default
from .search._objective import TrialFailed, TrialObjective
from .search._phases import phase
from .search._space import SearchSpace
from .search._strategies import check_strategies, chunk_size, make_pruner, make_sampler, sampler_seed
from .search._study import StudyMismatchError, enqueue_defaults, open_study, record_storage, save_note, study_note
from .storage._open import artifact_store, open_storage

__all__ = ["Budget", "Objective", "Report", "Search", "Storage", "StudyMismatchError", "resolve_device", "tune"]

logger = logging.getLogger("tuner")
ExplainerClasses = type[LRPBase] | type[LRPAttn] | Sequence[type[LRPBase] | type[LRPAttn]] | None


def tune(
    explainer_cls: ExplainerClasses,
    model: nn.Module,
    data: Data,
    *,
    objective: Objective | str = Objective(),
    budget: Budget = Budget(),
    search: Search = Search(),
    report: Report = Report(),
    storage: str | Storage | None = None,
    study_name: str | None = None,
    explainer_kwargs: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
) -> TuneResult:
    """Find the explainer configuration whose attributions score best under the objective's metric.

    ``explainer_cls`` is one class, a list (searched together through a categorical ``explainer``
    parameter) or None for the four LRP variants (:class:`~explainers.attnlrp.LRPAttn` for a Hugging Face text
    model given as a :class:`~explainers.attnlrp.TextClassifier`, whose token ids the metrics perturb).
    ``objective`` (an :class:`Objective` or a metric name) says what a trial is scored by; with several metrics the
    study is multi-objective and its result a Pareto front (never pruned). The metric's settings belong to the
    study: resuming it with other settings is refused. ``budget`` (:class:`Budget`) says how many complete trials
    the study holds in all (so running again with the same ``storage`` and ``study_name`` resumes it, and several
    processes may share one study and together finish exactly ``n_trials``), and which samples every trial scores
    and which are held out for the verdict.
    ``search`` (:class:`Search`) chooses the sampler, pruner, seed and batch size; ``report`` (:class:`Report`)
    the robustness panel, the reference rows and the figures; ``storage`` is a URL or a :class:`Storage`.

    Every trial scores the same samples, ``batch_size`` at a time (with a pruner, in up to four chunks, so that it
    can stop a trial after each); the first trials are each variant's default configuration (and, for
    LRPLayerwise, the four variants' configurations). ``explainer_kwargs`` (e.g. ``low``, ``high``,
    ``zennit_canonizers``) go to each class that accepts them; a key no class accepts is refused.
    """
    objective = Objective(objective) if isinstance(objective, str) else objective
    for name, value, kind in (
        ("objective", objective, Objective),
        ("budget", budget, Budget),
        ("search", search, Search),
        ("report", report, Report),
    ):
        if not isinstance(value, kind):
            raise TypeError(f"{name} must be a tuner.{kind.__name__}, got {type(value).__name__}")
    storage = Storage.of(storage)
    check_model(model)
    metric_list = objective.metrics
    check_strategies(search.sampler, search.pruner, len(metric_list))
    device = resolve_device(device, model)
    model = model.to(device)
    with evaluation_mode(model):  # the model comes back in its mode, with its hooks and flags, also on error
        samples = fixed_samples(data, model, budget.n_samples, search.seed, device, search.batch_size, budget.n_holdout)
        given, baseline_name = _policy.text_baseline(model, objective.settings())
        objective_settings = _policy.objective_settings(samples.inputs, given)
        metrics = _policy.fit_baselines([_metric(m, model, objective_settings) for m in metric_list], samples.inputs)
        _check_masks_for(metrics, samples)
        panel_list = panel_metrics(
            report.panel if report.panel_budget > 0 else False, model, samples.inputs, masks=samples.masks is not None
        )
        bases = _bases(explainer_cls, model, explainer_kwargs or {})
        for base in bases:
            base.check_inputs(samples.inputs[:1])  # inputs the model rejects fail here; trials skip the check
        check_target_range(torch.cat([samples.targets, samples.holdout_targets]), bases[0].n_classes)
        full_space = SearchSpace(bases)
        if search.sampler == "grid":
            full_space.grid()  # raises for several explainers, before any study exists

        study_attrs = _study_attrs(metrics, model, full_space, samples, search.seed)
        study_attrs["baseline"] = _baseline_attr(
            objective_settings, given="baseline" in objective.settings(), name=baseline_name
        )
        with warnings.catch_warnings():  # heartbeats, WilcoxonPruner and TPE's group are "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna_pruner = make_pruner(search.pruner, len(metrics))
            storage_obj = open_storage(storage.url, heartbeat_interval=storage.heartbeat_interval)
            study = open_study(storage_obj, study_name, [m.direction for m in metrics], study_attrs, optuna_pruner)
        with phase("inert checks"):
            fixed = held_at_default(study, bases, samples.inputs, samples.targets, search.drop_inert)
        space = SearchSpace(bases, fixed=fixed)
        save_note(study, study_note(study, len(samples.inputs)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.sampler = fair_sampler(
                make_sampler(search.sampler, space, sampler_seed(search.seed, study, storage.url)),
                space,
                budget.stage_quota(len(space.variants)),
            )
        artifacts_dir = record_storage(study, storage.url)
        trial_attrs = {key: study_attrs[key] for key in ("metric", "metric_settings", "model", "library_versions")}
        pruning = not isinstance(optuna_pruner, optuna.pruners.NopPruner)
        trial_objective = TrialObjective(
            space,
            metrics,
            samples.inputs,
            samples.targets,
            batch_size=chunk_size(search.batch_size, len(samples.inputs), pruning=pruning),
            trial_attrs=trial_attrs,
            artifacts=artifact_store(artifacts_dir) if artifacts_dir else None,
            storage=storage_obj,
            n_heatmaps=report.n_heatmaps,
            budget=budget if storage.url is not None else None,
            share_work=search.share_work,
            masks=samples.masks,
            together=search.trials_together,
            n_trials=budget.capped(len(space.initial_params())).n_trials if space.empty else budget.n_trials,
        )
        holdout = _holdout_objective(space, metrics, samples, search.batch_size)
        enqueue_defaults(study, space, budget)
        if space.empty:
            logger.warning("nothing to tune: every tunable is inert on this model; evaluating the defaults only")
            budget = budget.capped(len(space.initial_params()))
        with phase("trials"):
            optimize(
                study,
                trial_objective,
                budget,
                show_progress_bar=report.show_progress_bar,
                catch=(TrialFailed,),
            )
        _check_completed(study)
        return TuneResult(
            study=study,
            space=space,
            objective=trial_objective,
            holdout=holdout,
            panel_metrics=panel_list,
            references=_reference_rows(report.reference_rows, samples.inputs),
            panel_budget=report.panel_budget,
            panel_min_seconds=report.panel_min_seconds,
        )


def _reference_rows(wanted: bool, inputs: torch.Tensor) -> bool:
    """captum's reference rows where asked for and the inputs are float (they attribute the inputs themselves;
    token ids have no gradient)."""
    if wanted and not inputs.is_floating_point():
        logger.warning("no reference rows (captum) for token ids: they attribute float inputs only")
        return False
    return wanted


def _holdout_objective(
    space: SearchSpace, metrics: list[Metric], samples: Samples, batch_size: int
) -> TrialObjective | None:
    """The objective that scores configurations on the held-out samples (none without held-out samples)."""
    if not len(samples.holdout_inputs):
        return None
    return TrialObjective(
        space,
        metrics,
        samples.holdout_inputs,
        samples.holdout_targets,
        batch_size=batch_size,
        trial_attrs={},
        share_work=False,
        masks=samples.holdout_masks,
    )


def _check_masks_for(metrics: list[Metric], samples: Samples) -> None:
    """A metric that scores against evidence masks needs data that has them (before any study exists)."""
    needing = [type(metric).__name__ for metric in metrics if metric.uses_masks]
    if needing and samples.masks is None:
        raise ValueError(
            f"{', '.join(needing)} scores maps against evidence masks, but the data has none: pass data as "
            "(inputs, labels, masks) or a dataset whose samples are (input, label, mask) (command line: --masks DIR)"
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


def _baseline_attr(settings: dict[str, Any], *, given: bool, name: str | None = None) -> str:
    """The perturbation baseline a study uses, and who chose it, for the study's user attributes."""
    value = settings.get("baseline")
    if name is not None:
        name = f"{name} (token id {value})" if name != "zero" else "zero (a zero embedding)"
    else:
        name = value if isinstance(value, str) else "a number" if isinstance(value, (int, float)) else "a tensor"
    return f"{name} ({'given' if given else 'the study default for these inputs'})"


def _metric(metric: str | Metric, model: nn.Module, kwargs: dict[str, Any]) -> Metric:
    """A metric by name, with the ``metric_kwargs`` its class accepts (several metrics share one dict)."""
    if not isinstance(metric, str):
        return metric
    accepted = metric_class(metric).accepted_settings()
    return get_metric(metric, model, **{k: v for k, v in kwargs.items() if k in accepted})


def explainer_classes(explainer_cls: ExplainerClasses, model: nn.Module) -> list[Any]:
    """The classes a study searches: those given, else the four LRP variants (:class:`LRPAttn` for a Hugging Face
    model wrapped for a study)."""
    if explainer_cls is None:
        return [LRPAttn] if isinstance(model, (TextClassifier, ImageClassifier)) else list(DEFAULT_EXPLAINERS)
    return list(explainer_cls) if isinstance(explainer_cls, (list, tuple)) else [explainer_cls]


def _bases(explainer_cls: ExplainerClasses, model: nn.Module, kwargs: dict[str, Any]) -> list[LRPBase]:
    """One base explainer per class, with the ``explainer_kwargs`` it accepts; with None, the default
    explainers that support the model."""
    classes = explainer_classes(explainer_cls, model)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, (LRPBase, LRPAttn))):
            raise TypeError(f"explainer_cls must be LRP explainer classes (LRPBase subclasses or LRPAttn), got {cls!r}")
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
