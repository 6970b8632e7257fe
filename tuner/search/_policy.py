"""The tuning policy that ``tune()`` and the command line share: how many samples are tuned on and held out,
what a study is called, and which trial is the best (one rule for one metric and for a Pareto front)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna


def split_sizes(n_available: int, n_samples: int | None, n_holdout: int | None = None) -> tuple[int, int]:
    """(tuned, held out) of ``n_available`` samples: ``n_samples`` (None: half the data) are tuned on and up to
    as many others (or ``n_holdout``) are held out, never tuned on, to check the result."""
    n_tune = (n_available + 1) // 2 if n_samples is None else min(n_samples, n_available)
    n_held = n_tune if n_holdout is None else n_holdout
    return n_tune, max(0, min(n_held, n_available - n_tune))


def objective_settings(inputs: Any, metric_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The perturbation metrics' settings a study uses: ``metric_kwargs``, and where they name no baseline, the
    study's default (:func:`metrics.perturbation.study_baseline`: a Gaussian blur for images, zero otherwise); on
    token ids no more perturbation steps than tokens (a short text has fewer than the default)."""
    from metrics.perturbation import DEFAULT_STEPS, study_baseline  # torch: imported when a study runs, not by the CLI

    settings = dict(metric_kwargs or {})
    if "baseline" not in settings:
        for key, value in study_baseline(inputs).items():
            settings.setdefault(key, value)
    if inputs.ndim == 2 and not inputs.is_floating_point() and inputs.shape[1] < DEFAULT_STEPS:
        settings.setdefault("n_steps", int(inputs.shape[1]))
    return settings


def text_baseline(model: Any, settings: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """For a text model (:class:`explainers.attnlrp.TextClassifier`), the metric settings with its named baseline
    (given, or the model's default: its mask token, else its unknown token, else a zero embedding) as the id that
    stands for it, and that name; other models' settings unchanged, and None."""
    from explainers.attnlrp import TEXT_BASELINES, TextClassifier

    if not isinstance(model, TextClassifier):
        return settings, None
    name = settings.get("baseline", model.default_baseline())
    if name not in TEXT_BASELINES:
        raise ValueError(
            f"a text model's perturbation baseline is one of {', '.join(TEXT_BASELINES)} (what a removed token's "
            f"embedding becomes); got {name!r}"
        )
    return {**settings, "baseline": model.baseline_id(name)}, name


def fit_baselines(metrics: list[Any], data: Any) -> list[Any]:
    """The data-wide baselines (``"min"``, ``"mean"``, ``"uniform"``) of each perturbation metric not yet fitted
    taken from ``data``, the study's tuned samples: every chunk and the held-out samples share one baseline."""
    from metrics.perturbation import PerturbationMetric  # torch: imported when a study runs, not by the CLI

    for m in metrics:
        if isinstance(m, PerturbationMetric) and m.baseline_data is None:
            m.fit_baseline(data)
    return metrics


def samples_to_load(n_samples: int, n_holdout: int | None = None) -> int:
    """The samples a study tunes on and those it holds out (as many again by default, see :func:`split_sizes`)."""
    return n_samples + (n_samples if n_holdout is None else n_holdout)


def tuned_on(n_samples: int, n_loaded: int, *, explicit: bool) -> int:
    """Samples to tune on when only ``n_loaded`` could be loaded: an ``explicit`` request is kept (the data
    then holds fewer back); a default is cut to half of what there is, so that half is still held out."""
    return n_samples if explicit else min(n_samples, max(1, n_loaded // 2))


def study_name(model: str, metrics: Sequence[str], explainers: Sequence[type] | None) -> str:
    """The default study name: ``<model>-<metric[+metric]>-<all | Class+Class>``."""
    names = "all" if explainers is None else "+".join(cls.__name__ for cls in explainers)
    return f"{model}-{'+'.join(metrics)}-{names}"


def choose_from_front(
    front: Sequence[optuna.trial.FrozenTrial],
    directions: Sequence[Any],
    *,
    index: int | None = None,
    weights: Sequence[float] | None = None,
) -> optuna.trial.FrozenTrial:
    """The ``index``-th trial of the front (by trial number), or the one maximising the weighted sum of the
    metrics rescaled to 0..1 over the front, 1 being the best in each metric's direction."""
    front = sorted(front, key=lambda t: t.number)
    if index is not None:
        if not 0 <= index < len(front):
            raise IndexError(f"the Pareto front has {len(front)} configurations; choose index 0..{len(front) - 1}")
        return front[index]
    signs = np.array([1.0 if d.name == "MAXIMIZE" else -1.0 for d in directions])
    weight = np.ones(len(signs)) if weights is None else np.asarray(weights, dtype=float)
    if weight.shape != signs.shape:
        raise ValueError(f"weights need one number per metric ({len(signs)}), got {len(weight)}")
    oriented = np.array([t.values for t in front], dtype=float) * signs
    spread = np.ptp(oriented, axis=0)
    scaled = (oriented - oriented.min(axis=0)) / np.where(spread > 0, spread, 1.0)
    return front[int(np.argmax(scaled @ weight))]


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The study's best trial; with several metrics the front's equal-weights choice (:func:`choose_from_front`).
    ``TuneResult`` and ``python -m tuner best`` both ask this function."""
    front = study.best_trials
    if not front:
        raise ValueError(f"study {study.study_name!r} has no complete trial yet")
    return study.best_trial if len(study.directions) == 1 else choose_from_front(front, study.directions)


def best_configuration(study: optuna.Study) -> dict[str, Any]:
    """The best trial of a stored study as JSON: explainer, Optuna params, value(s), trial, metric, direction."""
    best = best_trial(study)
    return {
        "study_name": study.study_name,
        "explainer": best.user_attrs.get("explainer"),
        "params": best.params,
        "value": best.value if len(best.values) == 1 else best.values,
        "trial": best.number,
        "metric": best.user_attrs.get("metric"),
        "direction": [d.name.lower() for d in study.directions],
    }
