"""One trial: build the explainer, attribute the fixed samples in chunks, score them, report per sample."""
import inspect
import math
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import optuna
import torch
from optuna.trial import TrialState

from metrics import Metric

from ._budget import Admission, admit
from ._heatmaps import heatmap_grid
from ._provenance import jsonable
from ._space import SearchSpace


def per_input_feature(attributions: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Attributions shaped like the inputs: relevance at an embedding output (B, L, E) for token ids
    (B, L) is summed over the embedding dimension to one score per token."""
    if attributions.shape != inputs.shape and attributions.shape[:inputs.ndim] == inputs.shape \
            and attributions.ndim == inputs.ndim + 1:
        return attributions.sum(-1)
    return attributions


class TrialFailed(Exception):
    """A configuration could not be scored (NaN/Inf attributions, an error); the reason is in the trial."""


class Objective:
    """The study's objective. Work that is the same for every trial (the samples, the metric's
    unperturbed reference scores) is done once here, not per trial."""

    def __init__(self, space: SearchSpace, metric: Metric, inputs: torch.Tensor, targets: torch.Tensor, *,
                 batch_size: int, trial_attrs: Dict[str, Any], artifacts=None, n_heatmaps: int = 4,
                 n_trials: Optional[int] = None, share_work: bool = True):
        self.space = space
        self.metric = metric
        self.inputs = inputs
        self.targets = targets
        self.batch_size = batch_size
        self.trial_attrs = trial_attrs
        self.artifacts = artifacts
        self.n_heatmaps = n_heatmaps
        self.n_trials = n_trials
        self.share_work = share_work
        self.reference = None
        if share_work and hasattr(metric, "reference") and "reference" in inspect.signature(metric.evaluate).parameters:
            self.reference = torch.cat([metric.reference(x, y) for x, y in self._chunks()])

    def __call__(self, trial: optuna.Trial) -> float:
        if self.n_trials is not None:
            admission = admit(trial, self.n_trials)
            if admission is not Admission.RUN:
                trial.set_user_attr("fail_reason", f"not run: {admission.value}")
                if admission is Admission.FULL:
                    trial.study.stop()
                raise TrialFailed(admission.value)
        explainer = self.space.suggest(trial)
        trial.set_user_attr("explainer", type(explainer).__name__)
        trial.set_user_attr("explainer_params", {name: jsonable(value) for name, value in
                                                 explainer.parameters().items() if name != "model"})
        for key, value in self.trial_attrs.items():
            trial.set_user_attr(key, value)
        repeated = self._repeated(trial) if self.share_work else None
        if repeated is not None:
            trial.set_user_attr("repeat_of", repeated.number)
            return repeated.value
        try:
            scores, shown = self._scores(trial, explainer)
        except optuna.TrialPruned:
            raise
        except Exception as error:  # any failure of a configuration is data, not a crash of the study
            reason = f"{type(error).__name__}: {error}"
            trial.set_user_attr("fail_reason", reason)
            raise TrialFailed(reason) from error
        value = float(scores.mean())
        if self.artifacts is not None:
            self._upload_heatmaps(trial, shown)
        return value

    def evaluate(self, explainer) -> torch.Tensor:
        """Per-sample scores of ``explainer`` on the study's samples (no trial, no pruning)."""
        return self._scores(None, explainer)[0]

    def _chunks(self):
        for start in range(0, len(self.inputs), self.batch_size):
            yield self.inputs[start:start + self.batch_size], self.targets[start:start + self.batch_size]

    def _scores(self, trial: Optional[optuna.Trial], explainer):
        scores, shown, start = [], None, 0
        for x, y in self._chunks():
            attributions = per_input_feature(explainer.attribute(x, y), x)
            kwargs = {} if self.reference is None else {"reference": self.reference[start:start + len(x)]}
            chunk = self.metric.evaluate(x, y, attributions, **kwargs).detach().float().cpu()
            if not torch.isfinite(chunk).all():
                raise FloatingPointError(f"the metric returned non-finite scores {chunk.tolist()}")
            scores.append(chunk)
            shown = attributions[:self.n_heatmaps] if shown is None else shown
            if trial is not None:
                for offset, score in enumerate(chunk.tolist()):
                    trial.report(score, step=start + offset)
                finished = start + len(x) == len(self.inputs)  # a fully scored trial completes
                if not finished and not trial.user_attrs.get("default_configuration") and trial.should_prune():
                    trial.set_user_attr("pruned_after_samples", start + len(x))
                    raise optuna.TrialPruned(f"pruned after {start + len(x)} samples")
            start += len(x)
        return torch.cat(scores), shown

    def _repeated(self, trial: optuna.Trial) -> Optional[optuna.trial.FrozenTrial]:
        """A finished trial with exactly these parameters: its value answers this one."""
        for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if other.params == trial.params and other.value is not None and not math.isnan(other.value):
                return other
        return None

    def _upload_heatmaps(self, trial: optuna.Trial, attributions: torch.Tensor) -> None:
        label = f"trial {trial.number}: {trial.user_attrs.get('explainer', '')}"
        with tempfile.TemporaryDirectory() as folder:
            path = heatmap_grid([(label, attributions)], Path(folder) / f"heatmaps-trial-{trial.number}.png")
            optuna.artifacts.upload_artifact(artifact_store=self.artifacts, file_path=str(path),
                                             study_or_trial=trial, mimetype="image/png")
