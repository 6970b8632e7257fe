"""The study's note on the dashboard: the result table, the held-out verdict and the rule that chose the best
configuration, as markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import optuna

if TYPE_CHECKING:
    import pandas as pd

    from ._result import TuneResult

RESULT_COLUMNS = ("default", "best", "default (held-out)", "best (held-out)", "trials", "best_params")


def result_note(result: TuneResult, table: pd.DataFrame) -> str:
    """The note's result section: the summary table (variants, default, best, held-out, captum rows) in Markdown,
    and which configuration ``best.json`` holds and by which rule."""
    columns = [column for column in RESULT_COLUMNS if column in table.columns]
    rows = [[str(name)] + [_cell(table.loc[name, column]) for column in columns] for name in table.index]
    header = ["explainer"] + [column.replace("_", " ") for column in columns]
    metric = study_metric(result.study)
    n = result.study.user_attrs.get("n_samples", len(result.objective.inputs))
    held = "" if result.holdout is None else f"; held-out: {len(result.holdout.inputs)} samples never tuned on"
    return (
        f"### Result\n\nMean {metric} over {n} tuned samples{held}.\n\n"
        + markdown_table(header, rows)
        + "\n\n### The configuration in best.json\n\n"
        + best_rule(result)
        + verdict_note(result)
    )


def verdict_note(result: TuneResult) -> str:
    """The note's verdict sections (empty without held-out samples): the best configuration against the defaults
    and captum's rows (paired statistics), and the robustness panel with its disagreement line."""
    text = ""
    comparisons = result.comparisons()
    if not comparisons.empty:
        rows = [
            [f"{row['against']}: {row['configuration']}", row["metric"], f"{row['diff']:+.4f}"]
            + [f"[{row['CI low']:+.4f}, {row['CI high']:+.4f}]", f"{row['p']:.2g}"]
            for row in comparisons.to_dict("records")
        ]
        text += (
            f"\n\n### The best against others ({int(comparisons['n'].iloc[0])} held-out samples)\n\n"
            "Mean paired difference (best minus other), its 95% percentile-bootstrap interval and the paired Wilcoxon "
            "p-value.\n\n" + markdown_table(["against", "metric", "difference", "95% CI", "p"], rows)
        )
    panel = result.panel()
    if not panel.empty:
        rows = [[str(name)] + [_cell(value) for value in panel.loc[name]] for name in panel.index]
        message = panel.attrs.get("message") or "The objective's winner is also first under most panel metrics."
        text += (
            "\n\n### Robustness panel (held-out samples)\n\n"
            + markdown_table(["method", *map(str, panel.columns)], rows)
            + f"\n\n{message}"
        )
    return text


def study_metric(study: optuna.Study) -> str:
    metric = study.user_attrs.get("metric", "value")
    return " / ".join(metric) if isinstance(metric, list) else str(metric)


def best_rule(result: TuneResult) -> str:
    """Which trial ``best.json`` holds and why (one metric: the best mean; several: a front point and its rule)."""
    trial = result.best_trial
    params = result.space.explainer_kwargs(trial.params)
    described = f"trial {trial.number}, {trial.user_attrs.get('explainer', '')}({_params(params)})"
    metric = study_metric(result.study)
    if not result.multi_objective:
        direction = "highest" if result.study.direction.name == "MAXIMIZE" else "lowest"
        return f"{described}: the complete trial with the {direction} mean {metric} ({trial.value:.4f})."
    front = result.study.best_trials
    values = ", ".join(f"{v:.4f}" for v in trial.values)
    return (
        f"{described}, {metric} = {values}: of the {len(front)} configuration{'s' if len(front) != 1 else ''} on the "
        "Pareto front, the one that "
        "maximises the sum of the metrics rescaled to 0..1 over the front (1 = best in each metric's direction), "
        "with equal weights (`tuner.search._policy.choose_from_front`). "
        "Another point: `TuneResult.choose(index=...)` or "
        "`choose(weights=...)`; the front is in pareto.csv."
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped). Columns after the first are right-aligned and
    start with an en space: the dashboard draws tables without cell padding, and numbers would touch."""
    escape = lambda text: str(text).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    pad = lambda cells: [escape(cells[0])] + [f"&ensp;{escape(cell)}" for cell in cells[1:]]  # noqa: E731
    lines = ["| " + " | ".join(pad(header)) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(pad(row)) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return _params(value)
    if isinstance(value, (tuple, list)):
        return " / ".join(f"{v:.4f}" for v in value)
    if isinstance(value, float):
        return "" if value != value else f"{value:.4f}"
    return "" if value is None else str(value)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
