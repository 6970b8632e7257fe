"""tune(): an Optuna study over the explainers' search spaces, scored by a faithfulness metric."""
import inspect
import json
import logging
import math
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Type, Union

import optuna
import torch
from optuna.trial import TrialState
from torch import nn

from explainers import LRPBase
from metrics import METRICS, Metric, get_metric

from ._budget import COUNTED
from ._data import Data, fixed_samples
from ._objective import Objective, TrialFailed
from ._inert import inert_tunables
from ._provenance import library_versions, model_fingerprint
from ._result import TuneResult
from ._space import ALL_VARIANTS, SearchSpace
from ._storage import artifact_dir_for, artifact_store, mask_url, open_storage

logger = logging.getLogger("tuner")
SAMPLERS = ("tpe", "random", "grid", "gp", "cmaes")
PRUNERS = ("wilcoxon", "median", "none")
PRUNING_CHECKS = 4  # with a pruner, a trial is scored in up to this many chunks and may stop after each
MIN_PRUNING_CHUNK = 4


class StudyMismatchError(ValueError):
    """An existing study of that name has another direction, metric or search space."""


def tune(
    explainer_cls: Union[Type[LRPBase], Sequence[Type[LRPBase]], None],
    model: nn.Module,
    data: Data,
    *,
    metric: Union[str, Metric, Sequence[Union[str, Metric]]] = "abpc",
    n_trials: int = 30,
    n_samples: Optional[int] = 16,
    sampler: str = "tpe",
    pruner: str = "wilcoxon",
    storage: Optional[str] = None,
    study_name: Optional[str] = None,
    seed: int = 0,
    device: Union[str, torch.device, None] = None,
    batch_size: int = 16,
    timeout: Optional[float] = None,
    show_progress_bar: bool = True,
    explainer_kwargs: Optional[Dict[str, Any]] = None,
    metric_kwargs: Optional[Dict[str, Any]] = None,
    n_heatmaps: int = 4,
    heartbeat_interval: Optional[int] = 60,
    share_work: bool = True,
    n_holdout: Optional[int] = None,
    drop_inert: bool = True,
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

    ``metric`` may be a list: a multi-objective study whose result is a Pareto front. ``n_holdout`` samples
    (default: as many as ``n_samples``, where the data has them) are never tuned on; the summary reports the
    default and the best configurations on them too. With ``drop_inert``, tunables whose extreme values give
    the same attributions up to scale are held at their default. ``share_work=False`` turns off what trials
    share (the metrics' unperturbed scores computed once, repeated configurations answered from the study):
    for benchmarks only.
    """
    _check_choices(n_trials=n_trials, batch_size=batch_size, sampler=sampler, pruner=pruner)
    device = resolve_device(device, model)
    model = model.to(device).eval()
    samples = fixed_samples(data, model, n_samples, seed, device, batch_size, n_holdout)
    metrics = [_metric(m, model, metric_kwargs or {}) for m in (metric if isinstance(metric, (list, tuple))
                                                                 else [metric])]
    if len(metrics) > 1 and sampler in ("gp", "cmaes", "grid"):
        raise ValueError(f"the {sampler} sampler searches one objective; use tpe or random with several metrics")
    bases = _bases(explainer_cls, model, explainer_kwargs or {})
    for base in bases:
        base.check_inputs(samples.inputs[:1])  # inputs the model rejects fail here; trials skip the check
    full_space = SearchSpace(bases)
    if sampler == "grid":
        full_space.grid()  # raises for several explainers, before any study exists

    study_attrs = {
        "metric": [type(m).__name__ for m in metrics] if len(metrics) > 1 else type(metrics[0]).__name__,
        "metric_settings": [m.settings() for m in metrics] if len(metrics) > 1 else metrics[0].settings(),
        "model": model_fingerprint(model),
        "library_versions": library_versions(),
        "explainers": list(full_space.variants),
        "search_space": _describe_space(full_space),
        "n_samples": len(samples.inputs),
        "seed": seed,
    }
    directions = [m.direction for m in metrics]
    pruner = pruner if len(metrics) == 1 else "none"  # a multi-objective study reports no per-sample scores
    with warnings.catch_warnings():  # heartbeats, WilcoxonPruner and TPE's group are "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage_obj = open_storage(storage, heartbeat_interval=heartbeat_interval)
        study = _open_study(storage_obj, study_name, directions, study_attrs, _pruner(pruner))
    space = SearchSpace(bases, fixed=_inert(study, bases, samples, drop_inert))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.sampler = _sampler(sampler, space, _sampler_seed(seed, study, storage))
    artifacts_dir = artifact_dir_for(storage) if storage is not None else None
    if artifacts_dir is not None and "artifact_dir" not in study.user_attrs:
        study.set_user_attr("artifact_dir", str(artifacts_dir))
    if storage is not None:
        study.set_user_attr("storage", mask_url(storage))
    trial_attrs = {key: study_attrs[key] for key in ("metric", "metric_settings", "model", "library_versions")}
    objective = Objective(space, metrics, samples.inputs, samples.targets,
                          batch_size=_chunk_size(batch_size, len(samples.inputs), pruning=pruner != "none"),
                          trial_attrs=trial_attrs, artifacts=artifact_store(artifacts_dir) if artifacts_dir else None,
                          n_heatmaps=n_heatmaps, n_trials=n_trials if storage is not None else None,
                          share_work=share_work)
    holdout = Objective(space, metrics, samples.holdout_inputs, samples.holdout_targets, batch_size=batch_size,
                        trial_attrs={}, share_work=False) if len(samples.holdout_inputs) else None
    _enqueue_defaults(study, space)
    if space.empty:
        logger.warning("nothing to tune: every tunable is inert on this model; evaluating the defaults only")
        n_trials = min(n_trials, len(space.initial_params()))
    _optimize(study, objective, n_trials, timeout, show_progress_bar)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        reasons = {t.user_attrs.get("fail_reason") for t in study.trials} - {None}
        raise RuntimeError(f"no trial completed; failures: {'; '.join(sorted(reasons)) or 'none recorded'}")
    return TuneResult(study=study, space=space, objective=objective, holdout=holdout)


def _inert(study: optuna.Study, bases: List[LRPBase], samples, drop_inert: bool) -> Dict[str, List[str]]:
    """The tunables held at their default: found on a new study (and noted there), read back on resume."""
    if "inert_parameters" in study.user_attrs:
        return {variant: list(reasons) for variant, reasons in study.user_attrs["inert_parameters"].items()}
    found: Dict[str, Dict[str, str]] = {}
    if drop_inert:
        x, y = samples.inputs[:4], samples.targets[:4]
        found = {type(base).__name__: inert_tunables(base, x, y) for base in bases}
        found = {variant: reasons for variant, reasons in found.items() if reasons}
    study.set_user_attr("inert_parameters", found)
    if found:
        lines = [f"- {variant}.{name}: {reason}" for variant, reasons in found.items()
                 for name, reason in reasons.items()]
        logger.warning("held at their defaults (inert on this model):\n%s", "\n".join(lines))
        _save_note(study, "### Inert parameters (held at their defaults)\n\n" + "\n".join(lines))
    return {variant: list(reasons) for variant, reasons in found.items()}


def _save_note(study: optuna.Study, text: str) -> None:
    """A note optuna-dashboard shows on the study's page."""
    from optuna_dashboard import save_note
    save_note(study, text)


def _metric(metric: Union[str, Metric], model: nn.Module, kwargs: Dict[str, Any]) -> Metric:
    """A metric by name, with the ``metric_kwargs`` its class accepts (several metrics share one dict)."""
    if not isinstance(metric, str):
        return metric
    if metric not in METRICS:
        get_metric(metric)  # raises, listing the valid names
    accepted = inspect.signature(METRICS[metric].__init__).parameters
    return get_metric(metric, model, **{k: v for k, v in kwargs.items() if k in accepted})


def _chunk_size(batch_size: int, n_samples: int, pruning: bool) -> int:
    """Samples attributed at once: ``batch_size``, but with a pruner at most a quarter of the samples, so that
    it can stop a trial after each quarter. Never under 4: the fewest paired scores on which the Wilcoxon
    test can reject (p = 1/16). On a CPU small batches cost no more per sample."""
    if not pruning:
        return batch_size
    return min(batch_size, max(MIN_PRUNING_CHUNK, math.ceil(n_samples / PRUNING_CHECKS)))


def _check_choices(*, n_trials: int, batch_size: int, sampler: str, pruner: str) -> None:
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be an integer of at least 1, got {n_trials!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if pruner not in PRUNERS:
        raise ValueError(f"unknown pruner {pruner!r}; choose one of {', '.join(PRUNERS)}")


def resolve_device(device: Union[str, torch.device, None], model: Optional[nn.Module] = None) -> torch.device:
    """None: the model's device; "auto": CUDA where available; else that device, if it exists."""
    if device in (None, "auto"):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        parameter = None if model is None else next(model.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use device cpu or auto")
    return device


def _bases(explainer_cls, model: nn.Module, kwargs: Dict[str, Any]) -> List[LRPBase]:
    """One base explainer per variant; with None, the variants that support the model."""
    classes = ALL_VARIANTS if explainer_cls is None else (
        list(explainer_cls) if isinstance(explainer_cls, (list, tuple)) else [explainer_cls])
    bases = []
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, LRPBase)):
            raise TypeError(f"explainer_cls must be LRP explainer classes, got {cls!r}")
        accepted = inspect.signature(cls.__init__).parameters
        try:
            bases.append(cls(model, **{k: v for k, v in kwargs.items() if k in accepted}))
        except ValueError as error:
            if explainer_cls is not None or "needs a model" not in str(error):
                raise
            logger.warning("skipping %s: %s", cls.__name__, error)
    if not bases:
        raise ValueError("none of the explainers supports this model")
    return bases


def _describe_space(space: SearchSpace) -> Dict[str, Any]:
    return {variant: {name: [kind.__name__, spec] for name, (kind, spec) in base.get_tunables().items()}
            for variant, base in space.variants.items()}


def _sampler_seed(seed: int, study: optuna.Study, storage: Optional[str]) -> int:
    """A resumed study continues the seed sequence instead of drawing the first run's configurations again.
    On storages made for several workers (PostgreSQL, journal files) each process also mixes in its id, so
    workers that start together do not propose the same configurations; those studies are not reproducible."""
    offset = len(study.get_trials(deepcopy=False))
    if storage is not None and not storage.startswith("sqlite"):
        offset += os.getpid() * 7919
    return (seed + offset) % 2**32


def _sampler(name: str, space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=space.several, n_startup_trials=5)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=5)
    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=5, warn_independent_sampling=False)


def _pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=4)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=4)
    return optuna.pruners.NopPruner()


def _open_study(storage, study_name, directions, attrs, pruner) -> optuna.Study:
    """Create the study, or load it after checking that it measures the same thing (else nothing is written)."""
    if storage is not None and study_name is not None:
        existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
        if study_name in existing:
            _check_same_study(existing[study_name], directions, attrs)
    study = optuna.create_study(storage=storage, study_name=study_name, directions=directions,
                                pruner=pruner, load_if_exists=True)
    for key, value in attrs.items():
        if key not in study.user_attrs:
            study.set_user_attr(key, value)
    return study


def _check_same_study(summary, directions: List[str], attrs: Dict[str, Any]) -> None:
    name = summary.study_name
    stored = [d.name.lower() for d in summary.directions]
    if stored != directions:
        raise StudyMismatchError(f"study {name!r} exists with direction {', '.join(stored)}, "
                                 f"but this run would {', '.join(directions)}; choose another --study-name")
    stored = summary.user_attrs
    for key in ("metric", "search_space"):
        if key in stored and json.dumps(stored[key], sort_keys=True) != json.dumps(attrs[key], sort_keys=True):
            raise StudyMismatchError(f"study {name!r} exists with another {key.replace('_', ' ')} "
                                     f"({stored[key]}); choose another --study-name to start a new study")


def _enqueue_defaults(study: optuna.Study, space: SearchSpace) -> None:
    """Each variant's default configuration first, so 'tuned versus default' is always in the study."""
    if study.get_trials(deepcopy=False):
        return
    for label, params in space.initial_params():  # skip_if_exists: workers starting together enqueue them once
        attrs = {"default_configuration": True} if label.endswith(" default") else {"initial_configuration": label}
        study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)


def _optimize(study: optuna.Study, objective: Objective, n_trials: int, timeout, show_progress_bar) -> None:
    finished = len(study.get_trials(deepcopy=False, states=COUNTED))
    remaining = n_trials - finished
    if remaining <= 0:
        logger.info("study %s already has %d finished trials", study.study_name, finished)
        return
    budget = optuna.study.MaxTrialsCallback(n_trials, states=COUNTED)
    # pruned and failed trials do not count towards n_trials (Optuna's MaxTrialsCallback convention); the
    # failure guard stops a study whose configurations all fail, the cap one that prunes without end
    study.optimize(objective, n_trials=10 * remaining + 10, timeout=timeout, catch=(TrialFailed,),
                   callbacks=[budget, _StopAfterFailures(limit=max(10, remaining))],
                   show_progress_bar=show_progress_bar, gc_after_trial=False)


class _StopAfterFailures:
    """Stops this process after ``limit`` failed trials in a row (a configuration space that always fails)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_a_row = 0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.in_a_row = self.in_a_row + 1 if trial.state == TrialState.FAIL else 0
        if self.in_a_row >= self.limit:
            logger.error("stopping: %d trials failed in a row", self.in_a_row)
            study.stop()
