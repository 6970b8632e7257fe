"""The robustness panel's scoring within a time budget: the held-out samples one at a time, every method under every
panel metric for one sample before the next, until the budget is spent.

It stops at the first sample boundary after the budget, so it never takes more than the budget plus one sample, and
the samples it scored are the same for every method and metric (the statistics stay paired). The budget is a
fraction of the time the trials took (:func:`panel_seconds`), so a larger study buys a larger panel.
FaithfulnessCorrelation averages ``n_repeats`` draws of subsets; the panel uses as many draws as its budget allows
for every held-out sample (at least one), measured on the first sample, and names the number in the label.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from metrics import FaithfulnessCorrelation, Metric
from metrics.perturbation import PerturbationMetric

from ...search._objective import TrialObjective
from ...search._phases import phase
from ._panel import PANEL_PHASE, Panel, same_metric, score_panel

#: ``Report(panel_budget=...)``: the panel's default share of the trials' time, and its floor in seconds
DEFAULT_PANEL_BUDGET = 0.3
DEFAULT_PANEL_MIN_SECONDS = 60.0


def panel_seconds(fraction: float, min_seconds: float, trial_seconds: float) -> float:
    """The panel's time budget: ``fraction`` of the trials' time, never less than ``min_seconds``; 0 with a
    fraction of 0 (no panel)."""
    return 0.0 if fraction <= 0 else max(min_seconds, fraction * trial_seconds)


@dataclass
class PanelScores:
    """What the budgeted scoring gives: the metrics as scored (FaithfulnessCorrelation with its draws), per method
    its (metrics, n) scores on the first n held-out samples, and the seconds it took."""

    metrics: list[tuple[str, Metric]]
    scores: dict[str, torch.Tensor]
    n_samples: int
    seconds: float
    #: seconds per metric label over the scored samples after the first (where the draws were chosen)
    metric_seconds: dict[str, float] = field(default_factory=dict)


def score_within_budget(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    attributions: dict[str, torch.Tensor],
    metrics: list[tuple[str, Metric]],
    budget: float,
    masks: torch.Tensor | None = None,
) -> PanelScores:
    """Score each method's held-out ``attributions`` (label -> (B, ...)) under the panel's ``metrics``, one sample
    at a time, stopping at the first sample boundary after ``budget`` seconds; ``masks`` (the samples' evidence)
    go to the metrics that use them."""
    began = time.perf_counter()
    columns: list[torch.Tensor] = []
    timings: dict[str, float] = {}
    for index in range(len(inputs)):
        x, y = inputs[index : index + 1], targets[index : index + 1]
        maps = torch.stack([a[index] for a in attributions.values()]).to(x.device)
        sample = _Sample(x, y, maps, None if masks is None else masks[index : index + 1])
        if index == 0:
            metrics, column = _first_sample(sample, metrics, budget / len(inputs))
        else:
            column = torch.stack([_timed(timings, label, metric, sample) for label, metric in metrics])
        columns.append(column)
        if time.perf_counter() - began >= budget:
            break
    scored = torch.stack(columns, dim=-1) if columns else torch.zeros(len(metrics), len(attributions), 0)
    return PanelScores(
        metrics,
        {label: scored[:, m] for m, label in enumerate(attributions)},
        len(columns),
        time.perf_counter() - began,
        timings,
    )


@dataclass
class _Sample:
    """One held-out sample as the panel scores it: its input and target, every method's map, and its evidence mask."""

    x: torch.Tensor
    y: torch.Tensor
    maps: torch.Tensor  # (methods, ...)
    mask: torch.Tensor | None  # (1, ...): where its evidence is
    forwards: _SharedForwards = field(default_factory=lambda: _SharedForwards())


def _timed(timings: dict[str, float], label: str, metric: Metric, sample: _Sample) -> torch.Tensor:
    began = time.perf_counter()
    scores = _score(metric, sample)
    timings[label] = timings.get(label, 0.0) + time.perf_counter() - began
    return scores


def budgeted_panel(
    objective_scores: dict[str, torch.Tensor],
    attributions: dict[str, torch.Tensor],
    holdout: TrialObjective,
    panel: list[tuple[str, Metric]],
    budget: float,
    *,
    objective: tuple[str, str],
) -> Panel:
    """The panel of the methods (labels): their held-out objective scores (label -> (B,)) and ``attributions``
    scored under the ``panel`` within ``budget`` seconds (a run phase of its own); an entry equal to the objective
    (label, direction) is left out and named."""
    repeats = tuple(label for label, metric in panel if same_metric(metric, holdout.metrics[0]))
    metrics = [(label, metric) for label, metric in panel if label not in repeats]
    with phase(PANEL_PHASE):
        scored = score_within_budget(holdout.inputs, holdout.targets, attributions, metrics, budget, holdout.masks)
    return score_panel(
        objective_scores,
        scored.scores,
        scored.metrics,
        objective=objective,
        seconds=scored.seconds,
        n_held_out=len(holdout.inputs),
        budget=budget,
        repeats=repeats,
    )


def _first_sample(
    sample: _Sample, metrics: list[tuple[str, Metric]], per_sample: float
) -> tuple[list[tuple[str, Metric]], torch.Tensor]:
    """Score the first sample and choose FaithfulnessCorrelation's draws: as many as fit ``per_sample`` seconds
    (the budget over all held-out samples) next to the other metrics' measured cost, at least one, at most its
    own ``n_repeats``."""
    scores: dict[int, torch.Tensor] = {}
    began = time.perf_counter()
    for i, (_, metric) in enumerate(metrics):
        if not isinstance(metric, FaithfulnessCorrelation):
            scores[i] = _score(metric, sample)
    others = time.perf_counter() - began
    draw_seconds, one_draw = 0.0, {}
    for i, (_, metric) in enumerate(metrics):
        if isinstance(metric, FaithfulnessCorrelation):
            began = time.perf_counter()
            one_draw[i] = _score(_with_draws(metric, 1), sample)
            draw_seconds += time.perf_counter() - began
    draws = int((per_sample - others) / draw_seconds) if draw_seconds > 0 else 1
    chosen = list(metrics)
    for i in one_draw:
        label, metric = metrics[i]
        n = max(1, min(draws, metric.n_repeats))  # type: ignore[attr-defined]
        drawn = _with_draws(metric, n)
        chosen[i] = (_draws_label(label, n), drawn)
        scores[i] = one_draw[i] if n == 1 else _score(drawn, sample)
    return chosen, torch.stack([scores[i] for i in range(len(metrics))])


def _score(metric: Metric, sample: _Sample) -> torch.Tensor:
    """One sample's scores under ``metric``, one per method. The methods share the sample: its reference score is
    computed once and, where the metric perturbs the same way whatever the map, its perturbed forwards too."""
    x, y, maps = sample.x, sample.y, sample.maps
    with sample.forwards.serving(metric):
        reference = metric.reference(x, y) if metric.uses_reference else None
        kwargs: dict[str, torch.Tensor] = {} if reference is None else {"reference": reference}
        if metric.uses_masks:
            assert sample.mask is not None, "a panel metric that uses masks is refused without them (panel_metrics)"
            kwargs["masks"] = sample.mask.expand(len(maps), *sample.mask.shape[1:])
        if isinstance(metric, FaithfulnessCorrelation) or getattr(metric, "baseline", None) == "uniform":
            # seeded draws depend on the batch's shape: each method alone, the perturbed scores computed once
            with _shared_perturbations(metric):
                rows = [metric.evaluate(x, y, m[None], **kwargs) for m in maps]
            return torch.cat(rows).detach().float().cpu()
        batch = len(maps)
        if reference is not None:
            kwargs["reference"] = reference.expand(batch)
        scores = metric.evaluate(x.expand(batch, *x.shape[1:]), y.expand(batch), maps, **kwargs)
    return scores.detach().float().cpu()


def _with_draws(metric: Metric, n: int) -> Metric:
    """A copy of a FaithfulnessCorrelation with ``n`` draws of subsets (the same data-wide baseline)."""
    if n == metric.n_repeats:  # type: ignore[attr-defined]
        return metric
    copy = type(metric)(metric.model, **{**metric._settings, "n_repeats": n})
    copy.baseline_data = getattr(metric, "baseline_data", None)  # type: ignore[attr-defined]
    return copy


def _draws_label(label: str, n: int) -> str:
    """``FaithfulnessCorrelation (8 draws)``: the label with its ``n_repeats`` setting replaced by the draws used."""
    label = re.sub(r",? ?n_repeats=\d+", "", label).replace("(, ", "(").replace(" ()", "")
    draws = f"{n} draw{'s' if n != 1 else ''}"
    return f"{label[:-1]}, {draws})" if label.endswith(")") else f"{label} ({draws})"


class _shared_perturbations:
    """While one sample is scored for every method, the target scores of the metric's perturbed copies (the same
    seeded subsets whatever the map) are computed once and reused (looked up by equal inputs, targets, rows and
    masks: the answer is the one without the cache, ``tests/test_panel.py``)."""

    def __init__(self, metric: Metric):
        self.metric, self.entries = metric, []  # type: ignore[var-annotated]

    def __enter__(self) -> None:
        self.scores = self.metric._scores  # type: ignore[attr-defined]
        self.metric._scores = self  # type: ignore[attr-defined]

    def __exit__(self, *exc) -> None:
        del self.metric._scores  # type: ignore[attr-defined]

    def __call__(self, inputs, targets, layout, rows, masks):
        key = (inputs, targets, rows, masks)
        for entry, out in self.entries:
            if all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(entry, key)):
                return out
        out = self.scores(inputs, targets, layout, rows, masks)
        self.entries.append((key, out))
        return out


class _SharedForwards:
    """While one sample is scored, the target scores of its perturbed copies, shared by every panel metric that
    perturbs the same way (one model, baseline with its settings and data, score function) and by every method: a
    copy removes exactly the features of its mask, so a mask scored once answers the others (AbPC's most-relevant-
    first curve is MoRF's where their baselines agree, p(x) is every metric's reference, and methods that rank
    alike share steps). Seeded noise baselines and FaithfulnessCorrelation are left alone."""

    def __init__(self) -> None:
        self.known: dict[tuple[Any, ...], dict[bytes, torch.Tensor]] = {}

    @contextmanager
    def serving(self, metric: Metric) -> Iterator[None]:
        key = _perturbation_key(metric)
        if key is None:
            yield
            return
        original = metric._scores  # type: ignore[attr-defined]
        metric._scores = self._cached(original, self.known.setdefault(key, {}))  # type: ignore[attr-defined]
        try:
            yield
        finally:
            del metric._scores  # type: ignore[attr-defined]

    @staticmethod
    def _cached(original: Callable[..., torch.Tensor], known: dict[bytes, torch.Tensor]) -> Callable[..., torch.Tensor]:
        def scores(inputs, targets, layout, rows, masks):
            one_input = bool((targets == targets[0]).all()) and torch.equal(inputs, inputs[:1].expand_as(inputs))
            if not one_input:  # the copies of different inputs differ: nothing to share
                return original(inputs, targets, layout, rows, masks)
            keys = [mask.cpu().numpy().tobytes() for mask in masks]
            missing = list(dict.fromkeys(k for k in keys if k not in known))
            if missing:
                index = torch.tensor([keys.index(k) for k in missing], device=masks.device)
                for k, value in zip(missing, original(inputs, targets, layout, rows[index], masks[index])):
                    known[k] = value
            return torch.stack([known[k] for k in keys])

        return scores


def _perturbation_key(metric: Metric) -> tuple[Any, ...] | None:
    """What decides a perturbed copy's score, for a metric whose copies depend on the mask alone; else None."""
    if not isinstance(metric, PerturbationMetric) or isinstance(metric, FaithfulnessCorrelation):
        return None
    baseline = metric.baseline
    if not isinstance(baseline, (str, int, float)) or baseline in ("uniform", "road"):
        return None
    data = None if metric.baseline_data is None else tuple(metric.baseline_data.flatten().tolist())
    sigma = metric.blur_sigma if baseline == "blur" else None
    return (id(metric.model), baseline, sigma, metric.prob_fn, data)
