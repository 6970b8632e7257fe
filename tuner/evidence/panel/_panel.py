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

from explainers.attnlrp import TextClassifier
from metrics import Metric, get_metric, metric_class

from .._statistics import Tau, tau_with_ci

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
#: a text model's panel after AbPC with each removed-token baseline its tokenizer has (mask, unk, zero), where a
#: metric without a baseline takes the model's default one
TEXT_PANEL: tuple[tuple[str, dict[str, Any]], ...] = (("morf", {}), ("faithfulness_correlation", {}))
#: added to any panel when the data has evidence masks: do the maps point at the known evidence?
LOCALISATION_PANEL: tuple[tuple[str, dict[str, Any]], ...] = (
    ("relevance_mass", {}),
    ("relevance_rank", {}),
    ("pointing_game", {}),
)
TAU_ROW = "Kendall tau vs objective"
TAU_LOW, TAU_HIGH = "tau 95% CI low", "tau 95% CI high"
PANEL_PHASE = "robustness panel"  # the run phase its metrics are timed in (tuner.search._phases)


def panel_metrics(
    panel: PanelSpec, model: torch.nn.Module, inputs: torch.Tensor, *, masks: bool = False
) -> list[tuple[str, Metric]]:
    """The panel's metrics with their labels (e.g. ``AbPC (baseline=zero)``), built and checked before any
    study: an unknown name or setting raises ValueError. ``inputs`` (the study's tuned samples) decide what
    images get (the blur width of the objective, IROF) and define the data of the data-wide baselines; with evidence
    ``masks`` the localisation metrics join the panel (:data:`LOCALISATION_PANEL`). A text model's default panel is
    AbPC with each removed-token baseline it has, then :data:`TEXT_PANEL`."""
    from ...search._policy import fit_baselines, objective_settings, text_baseline

    if panel is False or (isinstance(panel, (list, tuple)) and not panel):
        return []
    images = inputs.ndim == 4 and inputs.is_floating_point()
    entries: list[PanelEntry]
    if isinstance(model, TextClassifier) and (panel is None or panel is True):
        entries = [*(("abpc", {"baseline": name}) for name in model.available_baselines()), *TEXT_PANEL]
    elif panel is None or panel is True:
        entries = [
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
    if masks:
        named = {entry if isinstance(entry, str) else entry[0] for entry in entries if not isinstance(entry, Metric)}
        entries += [entry for entry in LOCALISATION_PANEL if entry[0] not in named]
    study = objective_settings(inputs, {})  # the blur width images get, the steps short texts get
    built = []
    for entry in entries:
        if isinstance(entry, Metric):
            built.append((type(entry).__name__, entry))
            continue
        name, kwargs = (entry, {}) if isinstance(entry, str) else entry
        check_panel([(name, kwargs)], masks=masks)
        accepted = metric_class(name).accepted_settings()
        settings = text_baseline(model, dict(kwargs))[0] if "baseline" in accepted else dict(kwargs)
        if settings.get("baseline") == "blur" and "blur_sigma" in study:
            settings.setdefault("blur_sigma", study["blur_sigma"])
        if "n_steps" in study and "n_steps" in accepted:
            settings.setdefault("n_steps", study["n_steps"])
        described = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        label = metric_class(name).__name__ + (f" ({described})" if kwargs else "")
        built.append((label, get_metric(name, model, **settings)))
    labels = [label for label, _ in built]
    if len(set(labels)) < len(labels):
        raise ValueError(f"the panel names a metric twice: {', '.join(labels)}")
    fit_baselines([m for _, m in built], inputs)
    return built


def check_panel(entries: Sequence[tuple[str, dict[str, Any]]] | None, *, masks: bool | None = None) -> None:
    """Raise ValueError for a panel entry whose metric or setting does not exist, or that needs evidence masks the data
    lacks (``masks`` False; None: not known yet), before any work."""
    for name, kwargs in entries or ():
        try:
            cls = metric_class(name)  # the metric registry alone knows the names
        except ValueError as error:
            raise ValueError(f"panel: {error}") from None
        if cls.uses_masks:
            if masks is False:
                raise ValueError(
                    f"panel metric {name!r} scores maps against evidence masks, and the data has none: pass masks "
                    "with the data (command line: --masks DIR)"
                )
        elif not cls.requires_model:
            raise ValueError(f"panel metric {name!r} does not measure faithfulness to the model; use a model-based one")
        unknown = sorted(set(kwargs) - cls.accepted_settings())
        if unknown:
            valid = ", ".join(sorted(cls.accepted_settings()))
            raise ValueError(f"panel metric {name!r} takes no setting {', '.join(map(repr, unknown))}; valid: {valid}")


@dataclass
class Panel:
    """The panel's result: mean scores over the scored held-out samples (methods × metrics, the objective first),
    the per-sample scores behind them (method -> (metrics, samples), the objective first), ranks (1 = best in
    each metric's direction), Kendall's tau of each panel metric with the objective (with its bootstrap interval),
    the line saying when the objective's winner is not the panel's, the seconds the panel took against its
    budget, and how many of the held-out samples it scored."""

    objective: str
    scores: pd.DataFrame
    samples: dict[str, torch.Tensor]
    ranks: pd.DataFrame
    tau: dict[str, Tau]
    message: str | None
    seconds: float
    n_samples: int
    n_held_out: int = 0
    budget: float = math.inf
    #: panel entries left out because they equal the objective (shown once, as the objective's column)
    repeats: tuple[str, ...] = ()

    def table(self) -> pd.DataFrame:
        """One row per method: each metric's score and rank (``<metric> rank``), then rows of Kendall's tau and its
        interval (in the score columns; empty with too few samples); panel.csv is this table."""
        columns = {}
        for label in self.scores.columns:
            columns[label] = self.scores[label]
            columns[f"{label} rank"] = self.ranks[label]
        table = pd.DataFrame(columns)
        rows = {
            name: {label: _or_nan(getattr(self.tau[label], field)) for label in self.tau}
            for name, field in ((TAU_ROW, "value"), (TAU_LOW, "ci_low"), (TAU_HIGH, "ci_high"))
        }
        table = pd.concat([table, pd.DataFrame.from_dict(rows, orient="index")])
        ranks = [f"{label} rank" for label in self.scores.columns]
        return table.astype({column: "Int64" for column in ranks})

    def lines(self) -> list[str]:
        """The panel in a terminal's width: what was scored, then one line per panel metric (tau with its interval,
        the winner under it), then the disagreement line."""
        scored = f"{self.n_samples} of {self.n_held_out} held-out samples" if self.n_held_out else "no samples"
        budget = "" if math.isinf(self.budget) else f" (budget {self.budget:.0f} s)"
        lines = [f"robustness panel: {scored} in {self.seconds:.0f} s{budget}; τ = Kendall's tau with {self.objective}"]
        width = max(len(label) for label in self.tau) if self.tau else 0
        for label, tau in self.tau.items():
            winner = ", ".join(self.ranks.index[self.ranks[label] == 1])
            lines.append(f"  {label:<{width}}  {tau.text():<22}  first: {winner}")
        lines += [f"  ({label} is the objective: shown once)" for label in self.repeats]
        if self.message:
            lines.append(self.message)
        return lines


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


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
    n_held_out: int = 0,
    budget: float = math.inf,
    repeats: tuple[str, ...] = (),
) -> Panel:
    """The panel of the methods (labels of ``objective_scores``): their per-sample held-out scores under the
    objective (``objective_scores``, label -> (B,), cut to the samples the panel scored) and under the panel's
    ``metrics`` (``panel_scores``, label -> (metrics, n)); ``objective`` is the objective's (label, direction),
    ``seconds`` what the panel's scoring took."""
    rows, samples = {}, {}
    for label, ours in objective_scores.items():
        per_sample = panel_scores[label]
        n = per_sample.shape[-1]
        rows[label] = {name: float(values.mean()) for (name, _), values in zip(metrics, per_sample)}
        samples[label] = torch.cat([ours.reshape(1, -1)[:, :n].float(), per_sample.float()])
    objective_label, direction = objective
    scores = pd.DataFrame(rows).T
    scores.insert(0, objective_label, [float(samples[label][0].mean()) for label in scores.index])
    directions = {objective_label: direction, **{name: m.direction for name, m in metrics}}
    sign = {label: 1 if directions[label] == "maximize" else -1 for label in scores.columns}
    ranks = pd.DataFrame(
        {
            label: (scores[label] * sign[label]).rank(ascending=False, method="min").astype(int)
            for label in scores.columns
        }
    )
    methods = list(scores.index)
    oriented = torch.stack([samples[label] for label in methods], dim=1)  # (metrics, methods, samples)
    tau = {
        label: tau_with_ci(oriented[0] * sign[objective_label], oriented[index] * sign[label])
        for index, label in enumerate(scores.columns)
        if index > 0
    }
    n_samples = oriented.shape[-1] if methods else 0
    return Panel(
        objective_label,
        scores,
        samples,
        ranks,
        tau,
        _disagreement(ranks, objective_label),
        seconds,
        n_samples,
        n_held_out,
        budget,
        repeats,
    )


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
