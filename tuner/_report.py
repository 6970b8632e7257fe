"""The files a study run leaves in ``--out``: the table (CSV), the best configuration (JSON), heatmaps (PNG)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from torch import nn

from explainers import save_config

from ._baselines import captum_explainers, captum_scores
from ._heatmaps import heatmap_grid
from ._result import TuneResult
from ._storage import mask_url

N_SHOWN = 4


def write_report(result: TuneResult, model: nn.Module, out: Path, *, study_name: str, storage: str) -> pd.DataFrame:
    """Write summary.csv, best.json, heatmaps.png (and pareto.csv with several metrics, panel.csv with a robustness
    panel) into ``out``; return the table: LRP rows, then captum's explainers scored the same way."""
    out.mkdir(parents=True, exist_ok=True)
    table = result.summary()
    references = pd.DataFrame(
        [
            {"explainer": name, "default": score, "trials": 0, **result.reference_row(name, explainer)}
            for (name, score), explainer in zip(
                captum_scores(result.objective, model).items(), captum_explainers(model).values()
            )
        ]
    )
    table = pd.concat([table, references.set_index("explainer")])
    table.to_csv(out / "summary.csv")
    if result.multi_objective:
        result.pareto_front().to_csv(out / "pareto.csv")
    panel = result.panel()
    if not panel.empty:
        panel.to_csv(out / "panel.csv")
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
    _heatmaps(result, table, out / "heatmaps.png")
    return table


def _heatmaps(result: TuneResult, table: pd.DataFrame, path: Path) -> Path:
    """Default versus best configuration per variant, on the first samples."""
    x, y = result.objective.inputs[:N_SHOWN], result.objective.targets[:N_SHOWN]
    rows = []
    for variant, base in result.space.variants.items():
        rows.append((f"{variant} default", base.attribute(x, y)))
        best = table.loc[variant, "best_params"]
        if isinstance(best, dict):  # the tunables' own names (SearchSpace.explainer_kwargs)
            rows.append((f"{variant} best", base.set_kwargs(**best).attribute(x, y)))
    return heatmap_grid(rows, path)
