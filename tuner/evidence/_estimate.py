"""What the report will cost, said before it starts: each phase estimated from the trials' measured cost per sample
and the reference rows' measured gradient, in seconds and in trial-equivalents (seconds over the median complete
trial's, which does not depend on the machine)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from metrics import AbPC, FaithfulnessCorrelation, Metric

from ..search._study import median_trial_seconds
from ._reference import CaptumExplainer, StepChoice
from .panel._panel import PANEL_PHASE, same_metric

if TYPE_CHECKING:
    from ._result import TuneResult

#: a forward's share of a gradient (a backward costs about two forwards), and FaithfulnessCorrelation's own work
#: per draw, method and sample besides its forwards (its subsets and correlation: about 1 ms on the digits
#: default, a 2-core CPU)
FORWARD_PER_GRADIENT = 1 / 3
FC_DRAW_SECONDS = 0.001


@dataclass(frozen=True)
class ReportEstimate:
    """Estimated seconds of the report's phases, the panel's budget, and the median trial's seconds."""

    held_out: float
    references: float | None
    panel: float | None
    panel_budget: float | None
    trial: float

    def phases(self) -> dict[str, float]:
        """Phase name -> estimated seconds, for the run's timing summary."""
        named = {"held-out scores": self.held_out, "reference rows": self.references, PANEL_PHASE: self.panel}
        return {name: seconds for name, seconds in named.items() if seconds is not None}

    def line(self, fraction: float) -> str:
        """``report: held-out scores ~3 min, reference rows ~1 min, panel ≤ 3 min (30% of the trials; ...)``."""
        parts = [f"held-out scores ~{_duration(self.held_out)}"]
        if self.references is not None:
            parts.append(f"reference rows ~{_duration(self.references)}")
        if self.panel is not None and self.panel_budget is not None:
            parts.append(
                f"panel ~{_duration(self.panel)} (at most its budget {_duration(self.panel_budget)}, "
                f"{100 * fraction:.0f}% of the trials; --panel-budget 0 skips it)"
            )
        total = sum(self.phases().values())
        equivalents = f", {total / self.trial:.1f} trial-equivalents" if self.trial > 0 else ""
        return f"report: {', '.join(parts)}; about {_duration(total)} in all{equivalents}"


def estimate_report(result: TuneResult, steps: StepChoice | None) -> ReportEstimate:
    """The report's phases estimated from what the study measured: a held-out configuration costs what a trial
    costs per sample; a reference row one metric evaluation and its gradients (IG: one per step) per sample; the
    panel its metrics per method and sample (FaithfulnessCorrelation's forwards at a third of a gradient each), at
    most its budget."""
    objective, holdout = result.objective, result.holdout
    trial = median_trial_seconds(result.study)
    per_trial_sample = trial / max(1, len(objective.inputs)) if math.isfinite(trial) else 0.0
    measured = objective.metric_samples
    metric = sum(objective.metric_seconds) / measured if measured else per_trial_sample / 2
    n_held = len(holdout.inputs) if holdout is not None else 0
    methods = result._panel_methods()
    n_lrp = sum(not isinstance(m, CaptumExplainer) for m in methods.values())
    references = None
    gradient = steps.gradient_seconds if steps is not None else per_trial_sample / 4
    if steps is not None:
        references = n_held * (3 * metric + (2 + steps.n_steps) * gradient)
    panel = budget = None
    if result.has_panel:
        budget = result.panel_budget_seconds()
        forward = _forward_seconds(objective.metric, metric, gradient)
        first = holdout.metrics[0] if holdout is not None else None
        per_sample = 0.0
        for _, m in result.panel_metrics:
            if first is not None and same_metric(m, first):
                continue  # the objective's copy is not scored again
            if isinstance(m, FaithfulnessCorrelation):
                per_sample += m.n_repeats * (m.n_runs * forward + len(methods) * FC_DRAW_SECONDS)
            else:
                per_sample += len(methods) * metric
        panel = min(budget, n_held * per_sample)
    return ReportEstimate(n_lrp * n_held * per_trial_sample, references, panel, budget, trial if trial > 0 else 0.0)


def _forward_seconds(objective: Metric, per_sample: float, gradient: float) -> float:
    """One perturbed copy's forward: the objective's cost per sample over its copies where it is AbPC (2 (S - 1)
    copies), else a third of a gradient."""
    if isinstance(objective, AbPC):
        return per_sample / max(1, 2 * (objective.n_steps - 1))
    return gradient * FORWARD_PER_GRADIENT


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
