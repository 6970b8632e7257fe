"""Exactly ``n_trials`` complete trials when several workers share one study.

Optuna's MaxTrialsCallback stops a worker after the budget is reached, but two workers that ask for a trial
at the same moment both run one, and a study overshoots. Here each trial is admitted only while the
complete trials, the running trials that started before it and the queued retries of dead workers'
trials leave room.
A trial that started before this one but whose worker died is failed by the heartbeat check and re-queued
(Optuna's RetryHeartbeatStaleTrialCallback); this trial then gives way to that retry.

:func:`optimize` runs a study until it has ``n_trials`` complete trials. :class:`Budget` is the one object that
holds the trial budget, and this module the only one that reads it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import optuna
from optuna.trial import TrialState

from ._fair import counts_towards_budget, is_repeat
from ._interrupt import deliver_held, signals_allowed, signals_deferred
from ._progress import TrialProgress

logger = logging.getLogger("tuner")

REPEAT_LIMIT = 25  # repeats in a row after which a process takes the search space as exhausted
STAGE = 5  # sampled configurations each free variant gets before the sampler may concentrate


@dataclass(frozen=True)
class Budget:
    """How much a study may spend: ``n_trials`` complete trials in the whole study (pruned and failed ones do not
    count; a resumed or shared study counts them all), an optional ``timeout`` in seconds for this run, and the
    samples every trial scores (``n_samples``) and those held out for the verdict (``n_holdout``, default as many)."""

    n_trials: int = 30
    timeout: float | None = None
    n_samples: int | None = 16
    n_holdout: int | None = None

    def __post_init__(self) -> None:
        integer("n_trials", self.n_trials, minimum=1)
        if self.n_samples is not None:
            integer("n_samples", self.n_samples, minimum=1)
        if self.n_holdout is not None:
            integer("n_holdout", self.n_holdout, minimum=0)
        if self.timeout is not None:
            if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)):
                raise TypeError(f"timeout must be a number of seconds, got {type(self.timeout).__name__}")
            if not (math.isfinite(self.timeout) and self.timeout > 0):
                raise ValueError(f"timeout must be a positive number of seconds (or None), got {self.timeout!r}")

    def stage_quota(self, n_variants: int) -> int:
        """Sampled configurations each free variant gets before the sampler may concentrate
        (:class:`tuner.search._fair.FairSampler`)."""
        return min(STAGE, self.n_trials // max(1, n_variants))

    def spent(self, study: optuna.Study) -> bool:
        """Whether the study already holds its ``n_trials`` counted trials."""
        return counted(study) >= self.n_trials

    def admit(self, trial: optuna.Trial, own: Sequence[int] = ()) -> Admission:
        """Whether ``trial`` may run in a study shared by several workers (:func:`admit`)."""
        return admit(trial, self.n_trials, own=own)

    def capped(self, n_configurations: int) -> Budget:
        """This budget for a search space of only ``n_configurations`` (every tunable inert: the defaults alone)."""
        return dataclasses.replace(self, n_trials=min(self.n_trials, n_configurations))


def counted(study: optuna.Study) -> int:
    """The study's trials that use up the budget: complete, not answered from the study (pruned and failed
    trials do not count either, Optuna's MaxTrialsCallback convention)."""
    return sum(map(counts_towards_budget, study.get_trials(deepcopy=False)))


class Admission(Enum):
    RUN = "run"
    YIELD = "retried trials of dead workers fill the remaining budget"
    FULL = "the study already has its trials"


def admit(trial: optuna.Trial, n_trials: int, *, own: Sequence[int] = (), poll_seconds: float = 0.5) -> Admission:
    """Whether ``trial`` may run; waits while earlier running trials of other processes may still finish or turn
    out dead (``own``: the trials this process runs beside it, which count as finishing)."""
    study = trial.study
    while True:
        trials = study.get_trials(deepcopy=False)
        finished = sum(map(counts_towards_budget, trials))
        earlier = [t for t in trials if t.state == TrialState.RUNNING and t.number < trial.number]
        ahead = sum(t.number not in own for t in earlier)
        retries = sum(t.state == TrialState.WAITING and _is_retry(t) for t in trials)
        if finished + len(earlier) + retries < n_trials:
            return Admission.RUN
        if not ahead:
            return Admission.YIELD if retries and finished < n_trials else Admission.FULL
        with warnings.catch_warnings():  # fail_stale_trials is "experimental"; it does nothing without heartbeats
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        with signals_allowed():
            time.sleep(poll_seconds)


def room(study: optuna.Study, n_trials: int) -> int:
    """Trials the study's ``n_trials`` still leave room for beside its running and queued ones."""
    trials = study.get_trials(deepcopy=False)
    running = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    return n_trials - sum(map(counts_towards_budget, trials)) - running


def _is_retry(trial: optuna.trial.FrozenTrial) -> bool:
    return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial) is not None


def optimize(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float | Sequence[float]],
    budget: Budget,
    *,
    show_progress_bar: bool,
    catch: tuple[type[Exception], ...],
) -> None:
    """Run trials until the study has the budget's ``n_trials`` counted ones (complete and not repeats), its
    ``timeout`` seconds pass, trials keep failing, or the proposals keep repeating evaluated configurations."""
    n_trials, timeout = budget.n_trials, budget.timeout
    finished = counted(study)
    remaining = n_trials - finished
    if remaining <= 0:
        logger.info("study %s already has %d finished trials", study.study_name, finished)
        return
    started = time.monotonic()
    progress = TrialProgress(study, n_trials, enabled=show_progress_bar)  # Optuna's would count to the cap
    cap = 10 * remaining + 10
    # the failure guard stops a study whose configurations all fail, the repeat guard one whose space is
    # exhausted, the cap one that prunes without end
    repeats = StopAfterRepeats(REPEAT_LIMIT)
    current: list[int] = []  # the numbers of the trials this call runs now (or ran last)
    asked = study.ask

    def ask_tracked(*args: Any, **kwargs: Any) -> optuna.Trial:
        """Optuna's ask (also a companion's), after the signals held so far and with the new trial tracked."""
        deliver_held()  # before a trial is created: stopping here loses nothing
        trial = asked(*args, **kwargs)
        current.append(trial.number)
        return trial

    def tracked(trial: optuna.Trial) -> float | Sequence[float]:
        current[:] = [trial.number]  # its companions are added as they are asked for
        value = objective(trial)
        deliver_held()  # a signal held during the trial's bookkeeping fails it, as one in its computation does
        return value

    study.ask = ask_tracked  # type: ignore[method-assign]  # Optuna's trial loop calls study.ask()
    try:
        with signals_deferred():  # a signal stops the computation, never a storage call (see _interrupt)
            study.optimize(
                tracked,
                n_trials=cap,
                timeout=timeout,
                catch=catch,
                callbacks=[StopAtBudget(n_trials), StopAfterFailures(limit=max(10, remaining)), repeats, progress],
                show_progress_bar=False,
                gc_after_trial=False,
            )
    except BaseException:  # Ctrl-C, SIGTERM, or an error Optuna raised while it stored a trial
        for number in current:
            _fail_if_left_running(study, number)
        raise
    finally:
        del study.ask  # the class's method again
        progress.close()
    complete = counted(study)
    if complete >= n_trials or repeats.stopped:
        return
    if timeout is not None and time.monotonic() - started >= timeout:
        logger.warning(
            "stopped by the timeout of %gs: %d of %d trials complete; run the same command again to continue",
            timeout,
            complete,
            n_trials,
        )
    elif repeats.seen >= cap:
        logger.warning(
            "stopped after %d trials started by this process: %d of %d configurations scored (the rest pruned, "
            "failed or repeated); the search space may be exhausted",
            cap,
            complete,
            n_trials,
        )


def _fail_if_left_running(study: optuna.Study, number: int) -> None:
    """Fail trial ``number`` where still running: an interrupt raised while Optuna stores a trial's result (signals
    are held there, but ``tune()`` may run outside the main thread) escapes its handling (Optuna 5.1 re-raises it as
    an UnboundLocalError) and would leave the trial running until its heartbeat goes stale. Best effort: the
    heartbeat remains the fallback."""
    try:
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    except Exception as error:  # the interrupt is what the caller re-raises
        logger.debug("trial %d left running after the interrupt: %s", number, error)


class StopAtBudget:
    """Stops this process once the study has ``n_trials`` counted trials (other workers' included)."""

    def __init__(self, n_trials: int):
        self.n_trials = n_trials

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if counted(study) >= self.n_trials:
            study.stop()


class StopAfterRepeats:
    """Stops this process after ``limit`` trials in a row answered from the study: the sampler finds no new
    configuration (a small discrete space, every variant exhausted)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_a_row = 0
        self.seen = 0  # trials this process finished (the cap's count)
        self.stopped = False

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.seen += 1
        self.in_a_row = self.in_a_row + 1 if is_repeat(trial) else 0
        if self.in_a_row >= self.limit and not self.stopped:
            self.stopped = True
            logger.warning(
                "stopping: the last %d proposed configurations had all been scored (the search space looks "
                "exhausted); %d configurations scored",
                self.in_a_row,
                counted(study),
            )
            study.stop()


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


def integer(name: str, value: Any, *, minimum: int | None) -> None:
    """Raise TypeError unless ``value`` is an int (not a bool), ValueError if it is below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
