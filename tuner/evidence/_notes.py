"""The study's note on the dashboard: the result table, the held-out verdict and the rule that chose the best
configuration, as markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._verdict import best_rule, known_evidence_line, params_text, study_metric, verdict_rows, verdict_title

if TYPE_CHECKING:
    import pandas as pd

    from ._result import TuneResult

RESULT_COLUMNS = ("default", "best", "default (held-out)", "best (held-out)", "trials", "best_params")


def result_note(result: TuneResult, table: pd.DataFrame) -> str:
    """The note's result section, the compact parts first (readable without scrolling sideways): the verdict, the
    rule behind ``best.json``, the robustness panel's lines; then the per-variant table in Markdown. The wide
    tables are the study's attached files (summary.csv, panel.csv)."""
    text = ""
    header, rows = verdict_rows(result)
    if rows:
        text += f"### Verdict\n\n{verdict_title(result).rstrip(':')}.\n\n" + markdown_table(header, rows) + "\n\n"
    known = known_evidence_line(result)
    if known:
        text += f"### Known evidence\n\n{known}\n\n"
    text += "### The configuration in best.json\n\n" + best_rule(result)
    details = result.panel_details()
    if details is not None:
        text += "\n\n### Robustness panel\n\n" + "\n".join(f"- {line.strip()}" for line in details.lines())
    columns = [column for column in RESULT_COLUMNS if column in table.columns]
    cells = [[str(name)] + [_cell(table.loc[name, column]) for column in columns] for name in table.index]
    metric = study_metric(result.study)
    n = result.study.user_attrs.get("n_samples", len(result.objective.inputs))
    held = "" if result.holdout is None else f"; held-out: {len(result.holdout.inputs)} samples never tuned on"
    return (
        text
        + f"\n\n### Per variant\n\nMean {metric} over {n} tuned samples{held}. "
        + "The wide tables are attached to the study: summary.csv (every column), panel.csv (every metric's scores "
        + "and ranks).\n\n"
        + markdown_table(["explainer"] + [column.replace("_", " ") for column in columns], cells)
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
        return params_text(value)
    if isinstance(value, (tuple, list)):
        return " / ".join(f"{v:.4f}" for v in value)
    if isinstance(value, float):
        return "" if value != value else f"{value:.4f}"
    return "" if value is None else str(value)
