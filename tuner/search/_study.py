"""The study: opened (or resumed after a compatibility check), its defaults enqueued, notes for the dashboard."""

from __future__ import annotations

import json
import math
import statistics
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from ..storage._open import artifact_dir_for, mask_url, stored_artifact_dir
from ._budget import Budget
from ._space import SearchSpace


class StudyMismatchError(ValueError):
    """An existing study of that name has another direction, metric, search space, model or data."""


# the study attributes that must match for a run to resume a study: one study measures one thing (the metric and
# its settings, without its batch_size, which changes speed, not scores) on one model and one data set
COMPARED = ("metric", "metric_settings", "search_space", "model", "data")
IGNORED_SETTINGS = frozenset({"batch_size"})


def open_study(
    storage: BaseStorage | None,
    study_name: str | None,
    directions: Sequence[str],
    attrs: dict[str, Any],
    pruner: optuna.pruners.BasePruner,
) -> optuna.Study:
    """Create the study, or load it after checking that it measures the same thing (else nothing is written);
    ``attrs`` are recorded where the study does not hold them yet."""
    if storage is not None and study_name is not None:
        existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
        if study_name in existing:
            check_same_study(existing[study_name], directions, attrs)
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        directions=list(directions),  # type: ignore[arg-type]
        pruner=pruner,
        load_if_exists=True,
    )
    for key, value in attrs.items():
        if key not in study.user_attrs:
            study.set_user_attr(key, value)
    name_metrics(study, attrs["metric"])
    return study


def name_metrics(study: optuna.Study, metric: str | Sequence[str]) -> None:
    """The metrics' names on the study, so plots and the dashboard say "AbPC", not "Objective 0"."""
    names = [metric] if isinstance(metric, str) else list(metric)
    if study.metric_names != names:
        with warnings.catch_warnings():  # set_metric_names is "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)


def check_same_study(summary: optuna.study.StudySummary, directions: Sequence[str], attrs: dict[str, Any]) -> None:
    """Raise StudyMismatchError when the stored study has other directions, metric or search space."""
    name = summary.study_name
    stored = [d.name.lower() for d in summary.directions]
    if stored != list(directions):
        raise StudyMismatchError(
            f"study {name!r} exists with direction {', '.join(stored)}, "
            f"but this run would {', '.join(directions)}; choose another --study-name"
        )
    stored_attrs = summary.user_attrs
    for key in COMPARED:
        if key in stored_attrs and _canonical(stored_attrs[key]) != _canonical(attrs[key]):
            raise StudyMismatchError(
                f"study {name!r} exists with another {key.replace('_', ' ')} "
                f"({_short(stored_attrs[key])}; this run: {_short(attrs[key])}); "
                "choose another --study-name to start a new study"
            )


def _short(value: Any) -> str:
    """A stored attribute for a one-line message: fingerprints by their first hash digits."""
    if isinstance(value, dict) and "sha256" in value:
        return f"sha256 {str(value['sha256'])[:12]}"
    return _canonical(value)


def _canonical(value: Any) -> str:
    return json.dumps(_without_ignored(value), sort_keys=True)


def _without_ignored(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in IGNORED_SETTINGS}
    if isinstance(value, list):
        return [_without_ignored(v) for v in value]
    return value


def enqueue_defaults(study: optuna.Study, space: SearchSpace, budget: Budget | None = None) -> None:
    """Each variant's default configuration first, so 'tuned versus default' is always in the study.

    On resume, a default (or other initial configuration) whose trial was interrupted (Ctrl-C, SIGTERM, a dead
    worker) and not retried is enqueued again; one whose configuration itself failed is not. Nothing is enqueued
    into a study that already has its budget's trials.
    """
    trials = study.get_trials(deepcopy=False)
    if trials and budget is not None and budget.spent(study):
        return
    for label, params in space.initial_params():
        if trials and any(_settled(trial) and _same_params(_fixed_params(trial), params) for trial in trials):
            continue
        attrs = {"default_configuration": True} if label.endswith(" default") else {"initial_configuration": label}
        # skip_if_exists (a fresh study only): workers starting together enqueue the defaults once
        study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=not trials)


def _settled(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial answers (or will answer) its configuration: finished, running, waiting, or failed by the
    configuration itself. A trial failed without a reason of its own was interrupted and does not count."""
    if trial.state != TrialState.FAIL:
        return True
    reason = str(trial.user_attrs.get("fail_reason", ""))
    return bool(reason) and not reason.startswith("not run")


def _fixed_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return trial.system_attrs.get("fixed_params", trial.params)


def _same_params(stored: dict[str, Any], params: dict[str, Any]) -> bool:
    if stored.keys() != params.keys():
        return False
    for key, value in params.items():
        other = stored[key]
        if isinstance(value, (int, float)) and isinstance(other, (int, float)) and not isinstance(value, bool):
            if not math.isclose(float(value), float(other), rel_tol=1e-12, abs_tol=0.0):
                return False
        elif value != other:
            return False
    return True


def record_storage(study: optuna.Study, storage: str | None) -> Path | None:
    """Note in the study where it is stored (password masked) and where its heatmaps go; returns that
    folder (None for an in-memory study, which keeps no artifacts)."""
    if storage is None:
        return None
    artifacts_dir = artifact_dir_for(storage)  # beside the storage as it is now called (it may have been copied)
    recorded = stored_artifact_dir(storage, artifacts_dir)  # relative to a storage file: they move together
    if study.user_attrs.get("artifact_dir") != recorded:
        study.set_user_attr("artifact_dir", recorded)
    study.set_user_attr("storage", mask_url(storage))
    return artifacts_dir


def save_note(study: optuna.Study, text: str) -> None:
    """A note optuna-dashboard shows on the study's page (written only when its text changes)."""
    from optuna_dashboard import get_note
    from optuna_dashboard import save_note as save

    if get_note(study) != text:
        save(study, text)


def study_note(study: optuna.Study, n_samples: int) -> str:
    """The study page's note: what the intermediate values are, and the parameters held at their defaults."""
    if len(study.directions) > 1:
        sections = [
            "### Intermediate values\n\nA multi-objective study reports none: every trial scores all "
            f"{n_samples} samples, and its values are the means of their scores per metric."
        ]
    else:
        sections = [
            "### Intermediate values\n\n"
            f"Step *i* (0 to {n_samples - 1}) is the score of **sample *i***, not a training epoch: the "
            '"Intermediate values" plot shows per-sample scores, not a learning curve. A complete trial\'s value '
            f"is the mean of its {n_samples} scores. A pruned trial also reports, at step {n_samples}, the mean of "
            "the samples it scored; that mean is the value the dashboard shows for it."
        ]
    inert = study.user_attrs.get("inert_parameters") or {}
    if inert:
        lines = [
            f"- {variant}.{name}: {reason}" for variant, reasons in inert.items() for name, reason in reasons.items()
        ]
        sections.append("### Inert parameters (held at their defaults)\n\n" + "\n".join(lines))
    return "\n\n".join(sections)


def own_seconds(trial: optuna.trial.FrozenTrial) -> float | None:
    """The seconds ``trial`` itself took: its ``seconds`` attribute where it was scored with others (their
    durations overlap), else its duration; None for a trial that has not finished."""
    seconds = trial.user_attrs.get("seconds")
    if isinstance(seconds, (int, float)):
        return float(seconds)
    return trial.duration.total_seconds() if trial.duration else None


def trial_seconds(study: optuna.Study) -> float:
    """The seconds the study's finished trials took, all workers together."""
    return sum(filter(None, map(own_seconds, study.get_trials(deepcopy=False))))


def median_trial_seconds(study: optuna.Study) -> float:
    """The median time of a complete trial that scored its configuration (not a repeat): a trial-equivalent."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    times = sorted(filter(None, (own_seconds(t) for t in trials if "repeat_of" not in t.user_attrs)))
    return statistics.median(times) if times else math.nan
