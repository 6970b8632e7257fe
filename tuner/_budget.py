"""Exactly ``n_trials`` complete trials when several workers share one study.

Optuna's MaxTrialsCallback stops a worker after the budget is reached, but two workers that ask for a trial
at the same moment both run one, and a study overshoots. Here each trial is admitted only while the
complete trials, the running trials that started before it and the queued retries of dead workers'
trials leave room.
A trial that started before this one but whose worker died is failed by the heartbeat check and re-queued
(Optuna's RetryHeartbeatStaleTrialCallback); this trial then gives way to that retry.

:func:`optimize` runs a study until it has ``n_trials`` complete trials.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from enum import Enum

import optuna
from optuna.trial import TrialState

from ._progress import TrialProgress

logger = logging.getLogger("tuner")

COUNTED = (TrialState.COMPLETE,)  # pruned and failed trials do not use up the budget


class Admission(Enum):
    RUN = "run"
    YIELD = "retried trials of dead workers fill the remaining budget"
    FULL = "the study already has its trials"


def admit(trial: optuna.Trial, n_trials: int, *, poll_seconds: float = 0.5) -> Admission:
    """Whether ``trial`` may run; waits while earlier running trials may still finish or turn out dead."""
    study = trial.study
    while True:
        trials = study.get_trials(deepcopy=False)
        finished = sum(t.state in COUNTED for t in trials)
        ahead = sum(t.state == TrialState.RUNNING and t.number < trial.number for t in trials)
        retries = sum(t.state == TrialState.WAITING and _is_retry(t) for t in trials)
        if finished + ahead + retries < n_trials:
            return Admission.RUN
        if not ahead:
            return Admission.YIELD if retries and finished < n_trials else Admission.FULL
        with warnings.catch_warnings():  # fail_stale_trials is "experimental"; it does nothing without heartbeats
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        time.sleep(poll_seconds)


def _is_retry(trial: optuna.trial.FrozenTrial) -> bool:
    return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial) is not None


def optimize(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float | Sequence[float]],
    n_trials: int,
    *,
    timeout: float | None,
    show_progress_bar: bool,
    catch: tuple[type[Exception], ...],
) -> None:
    """Run trials until the study has ``n_trials`` complete ones (pruned and failed ones do not count, Optuna's
    MaxTrialsCallback convention), ``timeout`` seconds pass, or trials keep failing."""
    finished = len(study.get_trials(deepcopy=False, states=COUNTED))
    remaining = n_trials - finished
    if remaining <= 0:
        logger.info("study %s already has %d finished trials", study.study_name, finished)
        return
    budget = optuna.study.MaxTrialsCallback(n_trials, states=COUNTED)
    started = time.monotonic()
    progress = TrialProgress(study, n_trials, enabled=show_progress_bar)  # Optuna's would count to the cap
    # the failure guard stops a study whose configurations all fail, the cap one that prunes without end
    try:
        study.optimize(
            objective,
            n_trials=10 * remaining + 10,
            timeout=timeout,
            catch=catch,
            callbacks=[budget, StopAfterFailures(limit=max(10, remaining)), progress],
            show_progress_bar=False,
            gc_after_trial=False,
        )
    finally:
        progress.close()
    complete = len(study.get_trials(deepcopy=False, states=COUNTED))
    if timeout is not None and complete < n_trials and time.monotonic() - started >= timeout:
        logger.warning(
            "stopped by the timeout of %gs: %d of %d trials complete; run the same command again to continue",
            timeout,
            complete,
            n_trials,
        )


class StopAfterFailures:
    """Stops this process after ``limit`` failed trials in a row (a configuration space that always fails)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_a_row = 0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.in_a_row = self.in_a_row + 1 if trial.state == TrialState.FAIL else 0
        if self.in_a_row >= self.limit:
            logger.error("stopping: %d trials failed in a row", self.in_a_row)
            study.stop()
