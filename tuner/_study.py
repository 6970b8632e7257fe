"""The study: opened (or resumed after a compatibility check), its defaults enqueued, notes for the dashboard."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage

from ._space import SearchSpace
from ._storage import artifact_dir_for, mask_url


class StudyMismatchError(ValueError):
    """An existing study of that name has another direction, metric or search space."""


# the study attributes that must match for a run to resume a study (the metric's settings without its
# batch_size, which changes speed, not scores)
COMPARED = ("metric", "metric_settings", "search_space")
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
    return study


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
                f"({_canonical(stored_attrs[key])}; this run: {_canonical(attrs[key])}); "
                "choose another --study-name to start a new study"
            )


def _canonical(value: Any) -> str:
    return json.dumps(_without_ignored(value), sort_keys=True)


def _without_ignored(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in IGNORED_SETTINGS}
    if isinstance(value, list):
        return [_without_ignored(v) for v in value]
    return value


def enqueue_defaults(study: optuna.Study, space: SearchSpace) -> None:
    """Each variant's default configuration first, so 'tuned versus default' is always in the study."""
    if study.get_trials(deepcopy=False):
        return
    for label, params in space.initial_params():  # skip_if_exists: workers starting together enqueue them once
        attrs = {"default_configuration": True} if label.endswith(" default") else {"initial_configuration": label}
        study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)


def record_storage(study: optuna.Study, storage: str | None) -> Path | None:
    """Note in the study where it is stored (password masked) and where its heatmaps go; returns that
    folder (None for an in-memory study, which keeps no artifacts)."""
    if storage is None:
        return None
    artifacts_dir = artifact_dir_for(storage)
    if "artifact_dir" not in study.user_attrs:
        study.set_user_attr("artifact_dir", str(artifacts_dir))
    study.set_user_attr("storage", mask_url(storage))
    return artifacts_dir


def save_note(study: optuna.Study, text: str) -> None:
    """A note optuna-dashboard shows on the study's page."""
    from optuna_dashboard import save_note as save

    save(study, text)
