"""The robustness panel: do other faithfulness metrics agree with the study's objective?

A study's winner is a winner under one metric with one baseline. The panel re-scores, on the held-out samples,
the default and the best configuration of each variant and the captum reference rows under a fixed set of
metrics (by default AbPC with zero, min and blur baselines, MoRF, FaithfulnessCorrelation averaged over its
``n_repeats`` subset draws, IROF), ranks the methods under each, and gives Kendall's tau-b
(``scipy.stats.kendalltau``) between each panel metric's scores and the objective's over the methods: tau near 1
means the panel metric orders the methods as the objective does. When the objective's winner is first under no
more than half of the panel metrics, :attr:`Panel.message` says so in a plain line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from scipy import stats

from explainers import evaluation_mode
from metrics import FaithfulnessCorrelation, Metric, get_metric, metric_class

from ..search._objective import TrialObjective, configuration_key

PanelEntry = str | tuple[str, dict[str, Any]] | Metric
#: ``tune(panel=...)``: None or True for the default panel, False or [] for none, else its entries
PanelSpec = Sequence[PanelEntry] | bool | None

#: the default panel; on non-image inputs the entries marked image-only (a blur baseline, IROF) are left out
DEFAULT_PANEL: tuple[tuple[str, dict[str, Any]], ...] = (
    ("abpc", {"baseline": "zero"}),
    ("abpc", {"baseline": "min"}),
    ("abpc", {"baseline": "blur"}),
    ("morf", {}),
    ("faithfulness_correlation", {}),
    ("irof", {}),
)
TAU_ROW = "Kendall tau vs objective"
PANEL_PHASE = "robustness panel"  # the run phase its metrics are timed in (tuner.search._phases)


def panel_metrics(panel: PanelSpec, model: torch.nn.Module, inputs: torch.Tensor) -> list[tuple[str, Metric]]:
    """The panel's metrics with their labels (e.g. ``AbPC (baseline=zero)``), built and checked before any
    study: an unknown name or setting raises ValueError. ``inputs`` (the study's tuned samples) decide what
    images get (the blur width of the objective, IROF) and define the data of the data-wide baselines."""
    from ..search._policy import fit_baselines, objective_settings

    if panel is False or (isinstance(panel, (list, tuple)) and not panel):
        return []
    images = inputs.ndim == 4 and inputs.is_floating_point()
    if panel is None or panel is True:
        entries: list[PanelEntry] = [
            (name, kwargs)
            for name, kwargs in DEFAULT_PANEL
            if images or (name != "irof" and kwargs.get("baseline") != "blur")
        ]
    elif isinstance(panel, (str, Metric)) or not isinstance(panel, Sequence):
        raise TypeError(
            f"panel must be a list of metric names, (name, settings) pairs or Metric objects; got {panel!r}"
        )
    else:
        entries = list(panel)
    sigma = objective_settings(inputs, {}).get("blur_sigma")
    built = []
    for entry in entries:
        if isinstance(entry, Metric):
            built.append((type(entry).__name__, entry))
            continue
        name, kwargs = (entry, {}) if isinstance(entry, str) else entry
        check_panel([(name, kwargs)])
        settings = dict(kwargs)
        if settings.get("baseline") == "blur" and sigma is not None:
            settings.setdefault("blur_sigma", sigma)
        described = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        label = metric_class(name).__name__ + (f" ({described})" if kwargs else "")
        built.append((label, get_metric(name, model, **settings)))
    labels = [label for label, _ in built]
    if len(set(labels)) < len(labels):
        raise ValueError(f"the panel names a metric twice: {', '.join(labels)}")
    fit_baselines([m for _, m in built], inputs)
    return built


def check_panel(entries: Sequence[tuple[str, dict[str, Any]]] | None) -> None:
    """Raise ValueError for a panel entry whose metric or setting does not exist (before any work)."""
    for name, kwargs in entries or ():
        try:
            cls = metric_class(name)  # the metric registry alone knows the names
        except ValueError as error:
            raise ValueError(f"panel: {error}") from None
        if not cls.requires_model:
            raise ValueError(f"panel metric {name!r} does not measure faithfulness to the model; use a model-based one")
        unknown = sorted(set(kwargs) - cls.accepted_settings())
        if unknown:
            valid = ", ".join(sorted(cls.accepted_settings()))
            raise ValueError(f"panel metric {name!r} takes no setting {', '.join(map(repr, unknown))}; valid: {valid}")


@dataclass
class Panel:
    """The panel's result: held-out mean scores (methods × metrics, the objective first), the per-sample scores
    behind them (method -> (metrics, samples), the objective first, for paired statistics), ranks (1 = best in
    each metric's direction), Kendall's tau of each panel metric with the objective, the line saying when
    the objective's winner is not the panel's, and the seconds the panel took."""

    objective: str
    scores: pd.DataFrame
    samples: dict[str, torch.Tensor]
    ranks: pd.DataFrame
    tau: dict[str, float]
    message: str | None
    seconds: float
    n_samples: int

    def table(self) -> pd.DataFrame:
        """One row per method: each metric's score and rank (``<metric> rank``), then a row of Kendall's tau
        (in the score columns); panel.csv is this table."""
        columns = {}
        for label in self.scores.columns:
            columns[label] = self.scores[label]
            columns[f"{label} rank"] = self.ranks[label]
        table = pd.DataFrame(columns)
        tau = pd.DataFrame([{label: self.tau.get(label, math.nan) for label in self.scores.columns}], index=[TAU_ROW])
        table = pd.concat([table, tau])
        ranks = [f"{label} rank" for label in self.scores.columns]
        return table.astype({column: "Int64" for column in ranks})


class HeldOutScorer:
    """Per-sample held-out scores of configurations under the objective's metrics and the panel's, from one
    attribution per configuration and chunk (the panel re-scores the methods the summary already scored: the
    attributions are the costly part they share). Cached by configuration (class and settings). A panel metric equal
    to an objective (:func:`same_metric`) takes the objective's scores. While it scores, each FaithfulnessCorrelation
    of the panel reuses the target scores of its perturbed copies (:class:`_SameMasks`)."""

    def __init__(self, holdout: TrialObjective, panel: list[tuple[str, Metric]]):
        self.n_objective = len(holdout.metrics)
        #: each panel metric's row among the scorer's: an objective's own where the panel repeats it (the default
        #: panel's AbPC with a blur baseline is the default objective on images), else its own row after them
        own: list[Metric] = []
        self.rows: list[int] = []
        for _, metric in panel:
            repeated = [i for i, o in enumerate(holdout.metrics) if same_metric(metric, o)]
            self.rows.append(repeated[0] if repeated else self.n_objective + len(own))
            own += [] if repeated else [metric]
        model = next(iter(holdout.space.variants.values())).model
        with evaluation_mode(model):  # the metrics' reference scores, computed here once, as the trials' are
            self.scorer = TrialObjective(
                holdout.space,
                [*holdout.metrics, *own],
                holdout.inputs,
                holdout.targets,
                batch_size=holdout.batch_size,
                trial_attrs={},
                metric_phases=[None] * self.n_objective + [PANEL_PHASE] * len(own),
            )
        self.cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.seconds = 0.0  # spent in the panel's metrics
        self._same_masks = [(m, _SameMasks(m._scores)) for m in own if isinstance(m, FaithfulnessCorrelation)]

    def scores(self, explainer: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(objective scores: (B,) with one metric, (metrics, B) with several; panel scores: (panel metrics, B))."""
        key = configuration_key(explainer)
        if key not in self.cache:
            patched = [(m, masks) for m, masks in self._same_masks if "_scores" not in vars(m)]
            for metric, masks in patched:
                metric._scores = masks  # type: ignore[method-assign]
            try:
                rows = self.scorer.evaluate(explainer).reshape(len(self.scorer.metrics), -1)
            finally:
                for metric, _ in patched:
                    del metric._scores
            self.seconds += sum(self.scorer.metric_seconds[self.n_objective :])
            self.scorer.metric_seconds = [0.0] * len(self.scorer.metrics)
            objective = rows[0] if self.n_objective == 1 else rows[: self.n_objective]
            self.cache[key] = (objective, rows[self.rows])
        return self.cache[key]


def same_metric(a: Metric, b: Metric) -> bool:
    """Whether two metrics give the same scores: one class and model, equal settings (tensors by value, functions by
    identity) and the same data-wide baseline (see ``fit_baseline``)."""
    if type(a) is not type(b) or a.model is not b.model or a._settings.keys() != b._settings.keys():
        return False
    pairs = [(a._settings[k], b._settings[k]) for k in a._settings]
    pairs.append((getattr(a, "baseline_data", None), getattr(b, "baseline_data", None)))
    return all(_equal(x, y) for x, y in pairs)


def _equal(x: Any, y: Any) -> bool:
    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        return isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape and torch.equal(x, y)
    return x is y if callable(x) or callable(y) else bool(x == y)


def score_panel(
    objective_scores: dict[str, torch.Tensor],
    panel_scores: dict[str, torch.Tensor],
    metrics: list[tuple[str, Metric]],
    *,
    objective: tuple[str, str],
    seconds: float,
) -> Panel:
    """The panel of the methods (labels of ``objective_scores``): their per-sample held-out scores under the
    objective (``objective_scores``, label -> (B,)) and under the panel's ``metrics`` (``panel_scores``, label ->
    (metrics, B)); ``objective`` is the objective's (label, direction), ``seconds`` what the panel's scoring took."""
    rows, samples = {}, {}
    for label, ours in objective_scores.items():
        per_sample = panel_scores[label]
        rows[label] = {name: float(values.mean()) for (name, _), values in zip(metrics, per_sample)}
        samples[label] = torch.cat([ours.reshape(1, -1).float(), per_sample.float()])
    objective_label, direction = objective
    scores = pd.DataFrame(rows).T
    scores.insert(0, objective_label, [float(objective_scores[label].mean()) for label in scores.index])
    directions = {objective_label: direction, **{name: m.direction for name, m in metrics}}
    ranks = pd.DataFrame(
        {
            label: (scores[label] * (1 if directions[label] == "maximize" else -1))
            .rank(ascending=False, method="min")
            .astype(int)
            for label in scores.columns
        }
    )
    oriented = {label: scores[label] * (1 if directions[label] == "maximize" else -1) for label in scores.columns}
    tau = {
        label: float(stats.kendalltau(oriented[objective_label], oriented[label]).statistic)
        for label in scores.columns[1:]
    }
    n_samples = len(next(iter(objective_scores.values())).reshape(-1)) if objective_scores else 0
    return Panel(
        objective_label, scores, samples, ranks, tau, _disagreement(ranks, objective_label), seconds, n_samples
    )


class _SameMasks:
    """FaithfulnessCorrelation perturbs the same seeded subsets whatever the attributions, so the target scores of
    its perturbed copies depend only on the samples: while the panel scores its methods they are computed once per
    chunk of samples and reused (looked up by equal inputs, targets, rows and masks: the answer is the one without
    the cache, ``tests/test_panel.py``). It saves most of the panel's forward passes (400 per sample by default)."""

    def __init__(self, scores):
        self.scores, self.entries = scores, []

    def __call__(self, inputs, targets, layout, rows, masks):
        key = (inputs, targets, rows, masks)
        for entry, out in self.entries:
            if all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(entry, key)):
                return out
        out = self.scores(inputs, targets, layout, rows, masks)
        self.entries.append((key, out))
        return out


def _disagreement(ranks: pd.DataFrame, objective: str) -> str | None:
    """A plain line when the objective's winner is first under no more than half of the panel's metrics."""
    panel = [label for label in ranks.columns if label != objective]
    if not panel:
        return None
    winner = ranks.index[ranks[objective] == 1][0]
    first = {label: set(ranks.index[ranks[label] == 1]) for label in panel}
    wins = sum(winner in methods for methods in first.values())
    if 2 * wins > len(panel):
        return None
    counts = {method: sum(method in methods for methods in first.values()) for method in ranks.index}
    top = max(counts, key=lambda method: counts[method])
    other = "no other method is first more often" if top == winner else f"{top} is first under {counts[top]}"
    return (
        f"the winner under {objective} ({winner}) is not the winner under the majority of the panel: it is first "
        f"under {wins} of {len(panel)} panel metrics; {other}"
    )
