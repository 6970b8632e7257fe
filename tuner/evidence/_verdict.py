"""The verdict in a terminal's width: one row per method (each variant's default and best, the reference rows) with
its held-out mean and 95% bootstrap interval, and its difference to the best configuration with interval and
Wilcoxon p. The wide tables stay in summary.csv and panel.csv."""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Any

import optuna

from ..search._objective import configuration_key
from ._known import METRIC as KNOWN_METRIC
from ._statistics import bootstrap_ci, compare

if TYPE_CHECKING:
    from ._result import TuneResult

#: the widest line the report prints
WIDTH = 120


def verdict_rows(result: TuneResult) -> tuple[list[str], list[list[str]]]:
    """The verdict table's header and rows as text (none without held-out samples), the first metric's scores with
    several: per method its held-out mean [95% CI], and the best's difference to it [95% CI] with Wilcoxon p."""
    if result.holdout is None:
        return [], []
    best = result.best_explainer
    best_key = configuration_key(best)
    ours = _first(result, result._held_out_samples(best))
    header = ["method", f"held-out {result._metric_names()[0]} [95% CI]", "best - method [95% CI]", "p"]
    rows: list[list[str]] = []
    for label, explainer in result._panel_methods().items():
        scores = _first(result, result._held_out_samples(explainer))
        low, high = bootstrap_ci(scores)
        row = [label, f"{_num(float(scores.mean()))} [{_num(low)}, {_num(high)}]"]
        if configuration_key(explainer) == best_key:
            row += ["best", ""]
        else:
            c = compare(ours, scores)
            interval = f"[{_num(c.ci_low, sign=True)}, {_num(c.ci_high, sign=True)}]"
            row += [f"{_num(c.diff, sign=True)} {interval}", p_text(c.p)]
        rows.append(row)
    return header, rows


def verdict_title(result: TuneResult) -> str:
    assert result.holdout is not None
    return (
        f"verdict on {len(result.holdout.inputs)} held-out samples never tuned on (95% percentile-bootstrap "
        "intervals, 10,000 resamples; paired Wilcoxon p):"
    )


def verdict_lines(result: TuneResult) -> list[str]:
    """The verdict table in at most :data:`WIDTH` columns (a long method name is cut)."""
    header, rows = verdict_rows(result)
    if not rows:
        return []
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    widths[0] = min(widths[0], WIDTH - sum(widths[1:]) - 6)
    lines = [verdict_title(result)]
    for row in [header, *rows]:
        name = row[0] if len(row[0]) <= widths[0] else row[0][: widths[0] - 1] + "…"
        lines.append(
            f"{name:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]:>{widths[3]}}".rstrip()
        )
    return lines


def wrap(text: str) -> list[str]:
    """A line of prose in the report's width; an indented line goes on further indented."""
    indent = " " * (len(text) - len(text.lstrip()) + 4)
    return textwrap.wrap(text, WIDTH, break_on_hyphens=False, subsequent_indent=indent) or [""]


def p_text(p: float) -> str:
    """``p < 1e-4`` or the p-value to two significant digits."""
    if math.isnan(p):
        return "p n/a"
    return "p < 1e-4" if p < 1e-4 else f"p = {p:.2g}"


def _first(result: TuneResult, scores):
    return scores[0] if result.multi_objective else scores


def _num(value: float, *, sign: bool = False) -> str:
    if math.isnan(value):
        return "n/a"
    text = f"{value:+.3f}" if sign else f"{value:.3f}"
    return text if abs(value) < 1e4 else f"{value:+.3g}" if sign else f"{value:.3g}"


def known_evidence_line(result: TuneResult) -> str | None:
    """The verdict's line on the known evidence: the best configuration's relevance mass, and per comparison (its
    variant's default, each reference row) the other's, the difference [95% CI], and whether the best localises the
    evidence better, worse, or with no clear difference (the interval holds 0)."""
    table = result.known_evidence()
    if table.empty:
        return None
    assert result.holdout is not None
    parts = [
        f"vs {row['method'].split(' (')[0]} {row['other']:.3f}: {row['diff']:+.3f} "
        f"[{row['CI low']:+.3f}, {row['CI high']:+.3f}] {_word(row)}"
        for row in table.to_dict("records")
    ]
    return (
        f"known evidence ({KNOWN_METRIC}: positive relevance inside the mask, {len(result.holdout.inputs)} held-out "
        f"samples): best {table['best'].iloc[0]:.3f}; " + "; ".join(parts)
    )


def known_evidence_lines(result: TuneResult) -> list[str]:
    """:func:`known_evidence_line` in the report's width (none without masks)."""
    line = known_evidence_line(result)
    return [] if line is None else wrap(line)


#: differences of relevance mass (a share, 0..1) this small are rounding, not localisation
TIE = 1e-6


def _word(row: dict[str, Any]) -> str:
    """Whether the best localises better or worse than the other: the sign of an interval that excludes 0."""
    if row["CI low"] > TIE:
        return "better"
    if row["CI high"] < -TIE:
        return "worse"
    return "no clear difference"


def report_lines(result: TuneResult, files: list[str]) -> list[str]:
    """What the command line prints after a study, at most :data:`WIDTH` columns: the verdict, the known evidence
    (with masks), the best configuration and its rule, the panel (a line per panel metric), the Pareto front in
    short, the rules per layer group, and which files hold the wide tables."""
    lines = verdict_lines(result) + known_evidence_lines(result)
    lines += ["", *wrap("best.json: " + best_rule(result).replace("`", ""))]
    details = result.panel_details()
    if details is not None:
        lines += ["", *(line for text in details.lines() for line in wrap(text))]
    if result.multi_objective:
        front = result.pareto_front()
        lines += ["", f"Pareto front, {len(front)} configurations (pareto.csv; choose with TuneResult.choose):"]
        for trial, row in front.iterrows():
            values = ", ".join(f"{name} {row[name]:.3f}" for name in result._metric_names())
            params = ", ".join(f"{k}={_param(v)}" for k, v in row["params"].items())
            lines += wrap(f"  trial {trial}: {values}; {row['explainer']}({params})")
    described = result.best_explainer.describe()
    if described:
        lines += ["", "best rules per layer group:", *described.splitlines()]
    return [*lines, "", *wrap(f"the wide tables: {', '.join(files)}")]


def _param(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def study_metric(study: optuna.Study) -> str:
    metric = study.user_attrs.get("metric", "value")
    return " / ".join(metric) if isinstance(metric, list) else str(metric)


def best_rule(result: TuneResult) -> str:
    """Which trial ``best.json`` holds and why (one metric: the best mean; several: a front point and its rule)."""
    trial = result.best_trial
    params = result.space.explainer_kwargs(trial.params)
    described = f"trial {trial.number}, {trial.user_attrs.get('explainer', '')}({params_text(params)})"
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


def params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
