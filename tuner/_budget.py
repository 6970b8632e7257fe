"""Exactly ``n_trials`` complete trials when several workers share one study.

Optuna's MaxTrialsCallback stops a worker after the budget is reached, but two workers that ask for a trial
at the same moment both run one, and a study overshoots. Here each trial is admitted only while the
complete trials, the running trials that started before it and the queued retries of dead workers'
trials leave room.
A trial that started before this one but whose worker died is failed by the heartbeat check and re-queued
(Optuna's RetryHeartbeatStaleTrialCallback); this trial then gives way to that retry.
"""
import time
import warnings
from enum import Enum

import optuna
from optuna.trial import TrialState

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
