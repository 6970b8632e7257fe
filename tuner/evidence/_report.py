"""The files a study run leaves in ``--out`` (the table, the best configuration, the Pareto front, the comparison
figure), also put where the dashboard shows them (:mod:`tuner.evidence._dashboard`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from explainers import evaluation_mode, save_config

from ..figures._heatmaps import Row, Samples, comparison_figure, display_bounds, sample_words
from ..search._objective import TrialObjective, configuration_key
from ..search._phases import announce, phase
from ..storage._open import mask_url
from ._dashboard import publish
from ._estimate import estimate_report
from ._result import TuneResult

MAX_PARETO_ROWS = 6  # the comparison figure shows at most this many front configurations


def write_report(
    result: TuneResult,
    model: nn.Module,
    out: Path,
    *,
    study_name: str,
    storage: str | None,
    baselines: bool | None = None,
) -> pd.DataFrame:
    """Write summary.csv, best.json, heatmaps.png (pareto.csv with several metrics, panel.csv with a robustness
    panel, known_evidence.csv with evidence masks) into ``out``, upload them
    to the study's dashboard with the result table in its note; return the table: LRP rows, then (with
    ``baselines``; None: as the study's ``Report(reference_rows=...)``) captum's explainers scored the same way."""
    out.mkdir(parents=True, exist_ok=True)
    if baselines is not None:
        result.references = baselines
    steps = None
    if result.references:
        with phase("reference rows"):  # IG's steps first: the estimate needs them
            steps = result.choose_ig_steps()
    estimate = estimate_report(result, steps)
    announce(estimate.line(result.panel_budget), estimate.phases())
    with phase("held-out scores"):
        table = result.summary()
    if result.references:
        with phase("reference rows"):
            table = _with_references(result, table)
    table.to_csv(out / "summary.csv")
    files = [out / "summary.csv"]
    if result.multi_objective:
        result.pareto_front().to_csv(out / "pareto.csv")
        files.append(out / "pareto.csv")
    save_config(
        result.best_explainer,
        out / "best.json",
        value=result.best_value,
        default_value=result.default_value,
        metric=result.study.user_attrs.get("metric"),
        direction=[d.name.lower() for d in result.study.directions],
        trial=result.best_trial.number,
        study_name=study_name,
        storage=mask_url(storage),
    )
    files.append(out / "best.json")
    with phase("figures"):
        samples, rows = _figure_rows(result, model, table, result._references())
        metric = " / ".join(result._metric_names())
        title = f"{study_name}: {metric.split(' / ')[0]} of each sample above its map; per row the mean {metric}"
        comparison_figure(samples, rows, out / "heatmaps.png", title=title)
    files.append(out / "heatmaps.png")
    panel = result.panel()  # timed as its own phase; empty with the panel off
    if not panel.empty:
        panel.to_csv(out / "panel.csv")
        files.append(out / "panel.csv")
    evidence = result.known_evidence()  # with evidence masks only
    if not evidence.empty:
        evidence.to_csv(out / "known_evidence.csv", index=False)
        files.append(out / "known_evidence.csv")
    publish(result, table, files)
    return table


def _with_references(result: TuneResult, table: pd.DataFrame) -> pd.DataFrame:
    """The table with one row per reference explainer, scored on the held-out samples only (the figure scores the
    samples it shows)."""
    rows = [
        {"explainer": name, "trials": 0, **result.reference_row(explainer)}
        for name, explainer in result._references().items()
    ]
    return pd.concat([table, pd.DataFrame(rows).set_index("explainer")]) if rows else table


def _figure_rows(
    result: TuneResult, model: nn.Module, table: pd.DataFrame, references: dict[str, Any]
) -> tuple[Samples, list[Row]]:
    """The comparison figure's samples and rows: per variant its default and best (once where they are the same
    configuration), the Pareto configurations of a multi-objective study, the reference rows (scored on the shown
    samples alone). Attributions are computed once per configuration (cached by its settings)."""
    objective = result.objective
    shown = objective.shown
    figure = _Shown(objective, model, shown)
    names = result._metric_names()
    rows: list[Row] = []
    for variant, base in result.space.variants.items():
        default_trial = _default_trial(result, variant)
        best_params = table.loc[variant, "best_params"] if "best_params" in table else None
        best = base.set_kwargs(**best_params) if isinstance(best_params, dict) else None
        same = best is not None and best.settings() == base.settings()
        label = f"{variant} default = best" if same else f"{variant} default"
        rows.append(figure.row(label, base, default_trial, _note(table, variant, "default", names)))
        if best is not None and not same:
            best_trial = result._best_of(variant)
            rows.append(
                figure.row(f"{variant} best", best, best_trial, _note(table, variant, "best", names, best_params))
            )
    if result.multi_objective:
        front = sorted(result.study.best_trials, key=lambda t: t.number)[:MAX_PARETO_ROWS]
        for trial in front:
            values = ", ".join(f"{n} {v:.3f}" for n, v in zip(names, trial.values))
            params = _params_text(result.space.explainer_kwargs(trial.params))
            explainer = result.space.from_params(trial.params)
            rows.append(figure.row(f"Pareto: trial {trial.number}", explainer, trial, f"{values}\n{params}"))
    for name, explainer in references.items():
        rows.append(figure.row(name, explainer, None, _note(table, name, "default", names)))
    return figure.samples(result), rows


class _Shown:
    """The shown samples' attributions and scores, computed once per configuration."""

    def __init__(self, objective: TrialObjective, model: nn.Module, shown: list[int]):
        self.objective, self.model, self.shown = objective, model, shown
        self.x, self.y = objective.inputs[shown], objective.targets[shown]
        self.cache: dict[str, torch.Tensor] = {}
        self.scored: dict[str, list[float]] = {}

    def attributions(self, key: str, explainer) -> torch.Tensor:
        if key not in self.cache:
            kept = self.objective.shown_attributions.get(key)  # drawn by a trial of this process: reused
            if kept is None:
                with evaluation_mode(self.model):
                    kept = self.objective._shown(explainer)
            self.cache[key] = kept
        return self.cache[key]

    def row(self, label: str, explainer, trial, note: str) -> Row:
        """A configuration's row: its per-sample scores from its trial where the study has them (one metric),
        else scored here on the shown samples alone (the first metric), with the attributions of the same pass."""
        key = configuration_key(explainer)
        known = trial.intermediate_values if trial is not None else {}
        if all(i in known for i in self.shown):
            return Row(label, self.attributions(key, explainer), [known[i] for i in self.shown], note)
        if key not in self.scored:
            shown = TrialObjective(
                self.objective.space,
                self.objective.metrics,
                self.x,
                self.y,
                batch_size=len(self.x),
                trial_attrs={},
                share_work=False,
                n_heatmaps=len(self.x),
            )
            shown.shown = list(range(len(self.x)))
            with evaluation_mode(self.model):
                scores, attributions = shown._scores(None, explainer)
            self.scored[key] = scores[0].tolist()
            self.cache.setdefault(key, attributions)
        return Row(label, self.cache[key], self.scored[key], note)

    def samples(self, result: TuneResult) -> Samples:
        with evaluation_mode(self.model), torch.no_grad():
            output = self.model(self.x)
        predictions = output.argmax(-1).tolist() if output.ndim == 2 else None
        from_predictions = result.study.user_attrs.get("targets") == "prediction"
        return Samples(
            self.x,
            self.y.tolist(),
            predictions,
            display_bounds(result.space.variants.values()),
            "target" if from_predictions else "label",
            None if self.objective.masks is None else self.objective.masks[self.shown],
            sample_words(self.model, self.x),
        )


def _default_trial(result: TuneResult, variant: str):
    for trial in result._complete():
        if trial.user_attrs.get("default_configuration") and result.space.variant_of(trial.params) == variant:
            return trial
    return None


def _note(table: pd.DataFrame, variant: str, column: str, names: list[str], params: dict | None = None) -> str:
    """``AbPC 0.734, held-out 0.702`` (and the parameters of a best configuration)."""
    value, held = table.loc[variant].get(column), table.loc[variant].get(f"{column} (held-out)")
    parts = [] if _missing(value) else [f"{names[0] if len(names) == 1 else '/'.join(names)} {_number(value)}"]
    if not _missing(held):
        parts.append(f"held-out {_number(held)}")
    text = ", ".join(parts)
    return f"{text}\n{_params_text(params)}" if params else text


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _number(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return " / ".join(f"{v:.3f}" for v in value)
    return "n/a" if value is None or value != value else f"{float(value):.3f}"


def _params_text(params: dict) -> str:
    """Parameters as ``k=v`` pairs, two per line (a figure's row label stays narrow)."""
    items = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()]
    return "\n".join(", ".join(items[i : i + 2]) for i in range(0, len(items), 2))
