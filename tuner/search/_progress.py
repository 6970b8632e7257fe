"""The trial progress bar: the study's scored configurations out of ``n_trials``, with pruned, failed, repeated
and best.

Optuna's own bar counts every trial it may start against its internal cap (``0/610`` for a 60-trial study,
see :func:`tuner.search._budget.optimize`), so a user cannot tell how far the study is. This bar counts what
``n_trials`` counts: complete trials of the whole study (other workers' included) that were not answered from
the study (repeats of an evaluated configuration, :mod:`tuner.search._fair`).
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from ._fair import counts_towards_budget, is_repeat


class TrialProgress:
    """An Optuna callback that moves a tqdm bar to the study's complete trials after each trial."""

    def __init__(self, study: optuna.Study, total: int, *, enabled: bool = True):
        self.bar = tqdm(total=total, desc="trials", unit="trial", disable=not enabled, dynamic_ncols=True)
        self.update(study)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.update(study)

    def update(self, study: optuna.Study) -> None:
        if self.bar.disable:
            return
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        self.bar.n = min(sum(map(counts_towards_budget, complete)), self.bar.total)
        self.bar.set_postfix_str(describe(study, trials, complete), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def describe(
    study: optuna.Study, trials: list[optuna.trial.FrozenTrial], complete: list[optuna.trial.FrozenTrial]
) -> str:
    """``pruned=P failed=F [repeated=R] best=V`` (a multi-objective study: the Pareto front's size). Trials that were
    not run (a worker's turn given to another, :mod:`tuner.search._budget`) are not failures."""
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    failed = sum(
        t.state == TrialState.FAIL and not str(t.user_attrs.get("fail_reason", "")).startswith("not run")
        for t in trials
    )
    text = f"pruned={pruned} failed={failed}"
    repeated = sum(map(is_repeat, complete))
    if repeated:
        text += f" repeated={repeated}"
    if not complete:
        return text
    if len(study.directions) > 1:
        return f"{text} pareto={len(study.best_trials)}"
    return f"{text} best={study.best_value:.4g}"
