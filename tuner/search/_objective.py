"""One trial: build the explainer, attribute the fixed samples in chunks, score them, report per sample."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import TrialState

from explainers import evaluation_mode
from explainers.engine import attribute_many
from metrics import Metric

from ..figures._heatmaps import Samples, display_bounds, distinct_labels, sample_words, trial_figure
from ..storage._heatmaps import copy_heatmaps, upload_heatmap
from ._budget import Admission, Budget, room
from ._fair import in_stage
from ._interrupt import raise_if_received, signals_allowed
from ._space import SearchSpace

logger = logging.getLogger("tuner")


def per_input_feature(attributions: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Attributions shaped like the inputs: relevance at an embedding output (B, L, E) for token ids
    (B, L) is summed over the embedding dimension to one score per token."""
    if (
        attributions.shape != inputs.shape
        and attributions.shape[: inputs.ndim] == inputs.shape
        and attributions.ndim == inputs.ndim + 1
    ):
        return attributions.sum(-1)
    return attributions


def configuration_key(explainer) -> str:
    """One string per configuration (class and settings): what caches of scores and figures are keyed by."""
    return json.dumps([type(explainer).__name__, explainer.settings()], sort_keys=True, default=str)


MAX_KEPT_FIGURES = 64  # configurations whose shown attributions are kept for the report's figure


class TrialFailed(Exception):
    """A configuration could not be scored (NaN/Inf attributions, an error); the reason is in the trial."""


class TrialObjective:
    """The study's objective. Work that is the same for every trial (the samples, the metrics'
    unperturbed reference scores) is done once here, not per trial.

    With one metric a trial's value is its mean score and each sample's score is reported (so a pruner can
    stop it early); with several, the trial has one value per metric (a multi-objective study).
    """

    def __init__(
        self,
        space: SearchSpace,
        metrics: Sequence[Metric],
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        batch_size: int,
        trial_attrs: dict[str, Any],
        artifacts: optuna.artifacts.FileSystemArtifactStore | None = None,
        storage: optuna.storages.BaseStorage | None = None,
        n_heatmaps: int = 4,
        budget: Budget | None = None,
        share_work: bool = True,
        masks: torch.Tensor | None = None,
        together: int = 1,
        n_trials: int = 1,
    ):
        self.space = space
        self.metrics = list(metrics)
        self.inputs = inputs
        self.targets = targets
        self.masks = masks  # where the evidence is (bool, per sample), for the metrics that use masks
        self.batch_size = batch_size
        self.trial_attrs = trial_attrs
        self.artifacts = artifacts
        self.storage = storage  # the study's storage, where the artifacts' records are
        self.n_heatmaps = n_heatmaps
        self.budget = budget  # a shared study's budget: each trial is admitted only while it leaves room
        self.share_work = share_work
        self.together = together  # trials scored together, their attributions from one forward pass per chunk
        self.n_trials = n_trials  # the study's budget of counted trials, which the companions never exceed
        self.running: list[int] = []  # the numbers of the trials this call scores (the budget counts them its own)
        self.references = [self._reference(metric) if share_work else None for metric in self.metrics]
        self.shown = distinct_labels(targets, n_heatmaps)  # the figures' samples: different classes where possible
        self._figure_samples: Samples | None = None
        #: the shown samples' attributions of this process's scored configurations: the report draws them again
        self.shown_attributions: dict[str, torch.Tensor] = {}
        #: seconds spent in each metric
        self.metric_seconds = [0.0] * len(self.metrics)
        self.metric_samples = 0  # the samples those seconds scored (a sample's cost estimates the report's)

    @property
    def metric(self) -> Metric:
        return self.metrics[0]

    def _reference(self, metric: Metric) -> torch.Tensor | None:
        if metric.uses_reference:
            return torch.cat([metric.reference(x, y) for x, y in self._chunks()])
        return None

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        """Score ``trial``; with ``together`` > 1, also up to ``together - 1`` companion trials asked from the
        sampler now, whose attributions share the forward pass of each chunk (the companions are told here)."""
        self.running = [trial.number]
        self._admit(trial)
        explainer = self._prepare(trial)
        repeated = self._repeated(trial) if self.share_work else None
        if repeated is not None:
            return self._answer(trial, repeated, explainer)
        group = [(trial, explainer), *self._companions(trial)]
        with contextlib.ExitStack() as heartbeats:
            for companion, _ in group[1:]:
                heartbeat = get_heartbeat_thread(companion._trial_id, companion.study._storage)
                heartbeats.enter_context(heartbeat)  # type: ignore[arg-type]  # a context manager, untyped
            outcomes, seconds = self._scores_together([member for member, _ in group], [e for _, e in group])
            if len(group) == 1:
                return self._finish(trial, explainer, outcomes[0])
            for (companion, chosen), outcome, spent in list(zip(group, outcomes, seconds))[1:]:
                _tell(companion, functools.partial(self._finish_in_group, companion, chosen, outcome, spent))
        return self._finish_in_group(trial, explainer, outcomes[0], seconds[0])

    def _finish_in_group(self, trial: optuna.Trial, explainer, outcome, seconds: float) -> float | tuple[float, ...]:
        """:meth:`_finish`, the trial's own seconds in its ``seconds`` attribute: the trials of a group overlap,
        and Optuna's duration of each spans the whole group (:func:`tuner.search._study.own_seconds`)."""
        began = time.perf_counter()
        try:
            return self._finish(trial, explainer, outcome)
        finally:
            trial.set_user_attr("seconds", round(seconds + time.perf_counter() - began, 3))

    def _admit(self, trial: optuna.Trial) -> None:
        """Raise TrialFailed (and stop the study where it is full) unless the budget admits ``trial``."""
        if self.budget is None:
            return
        admission = self.budget.admit(trial, own=self.running)
        if admission is not Admission.RUN:
            trial.set_user_attr("fail_reason", f"not run: {admission.value}")
            if admission is Admission.FULL:
                trial.study.stop()
            raise TrialFailed(admission.value)

    def _prepare(self, trial: optuna.Trial):
        """The trial's explainer, its description in the trial's attributes."""
        explainer = self.space.suggest(trial)
        trial.set_user_attr("explainer", type(explainer).__name__)
        trial.set_user_attr("explainer_params", explainer.settings())
        if in_stage(trial):
            trial.set_user_attr("search_stage", True)  # never pruned: see tuner.search._fair
        for key, value in self.trial_attrs.items():
            trial.set_user_attr(key, value)
        return explainer

    def _answer(self, trial: optuna.Trial, repeated: optuna.trial.FrozenTrial, explainer):
        """The values of ``repeated``, a finished trial with the same parameters (its heatmaps copied)."""
        trial.set_user_attr("repeat_of", repeated.number)
        if (
            self.artifacts is not None
            and self.shown
            and not copy_heatmaps(self.artifacts, self.storage, repeated, trial)
        ):
            known = repeated.intermediate_values if len(self.metrics) == 1 else {}
            scores = [known[i] for i in self.shown] if all(i in known for i in self.shown) else None
            shown = self._shown(explainer)  # the original's heatmaps are gone
            self._upload_heatmaps(trial, shown, tuple(repeated.values), scores)
        return repeated.values[0] if len(self.metrics) == 1 else tuple(repeated.values)

    def _companions(self, trial: optuna.Trial) -> list[tuple[optuna.Trial, Any]]:
        """Up to ``together - 1`` more trials from the sampler (enqueued ones first), as many as the budget leaves
        room for; a repeated configuration is answered and told at once, an unadmitted one failed."""
        companions: list[tuple[optuna.Trial, Any]] = []
        study = trial.study
        for _ in range(self.together - 1):
            if study._stop_flag or room(study, self.n_trials) <= 0:
                break
            companion = study.ask()
            self.running.append(companion.number)
            try:
                self._admit(companion)
                explainer = self._prepare(companion)
            except TrialFailed as error:
                _tell(companion, functools.partial(_raise, error))
                break
            repeated = self._repeated(companion) if self.share_work else None
            if repeated is not None:
                _tell(companion, functools.partial(self._answer, companion, repeated, explainer))
                continue
            companions.append((companion, explainer))
        return companions

    def _finish(self, trial: optuna.Trial, explainer, outcome) -> float | tuple[float, ...]:
        """The trial's value(s) from its scores (its heatmaps uploaded), or its pruning or failure raised."""
        if isinstance(outcome, optuna.TrialPruned):
            raise outcome
        if isinstance(outcome, Exception):  # any failure of a configuration is data, not a crash of the study
            reason = f"{type(outcome).__name__}: {outcome}"
            trial.set_user_attr("fail_reason", reason)
            raise TrialFailed(reason) from outcome
        scores, shown = outcome
        values = tuple(float(v) for v in scores.mean(1))
        if shown is not None and len(self.shown_attributions) < MAX_KEPT_FIGURES:
            self.shown_attributions[configuration_key(explainer)] = shown.detach().cpu()
        if self.artifacts is not None and self.shown:  # drawn after scoring: the figure shows the trial's value
            self._upload_heatmaps(trial, shown, values, scores[0, self.shown].tolist())
        return values[0] if len(values) == 1 else values

    def evaluate(self, explainer) -> torch.Tensor:
        """Per-sample scores of ``explainer`` on the study's samples (no trial, no pruning): shape (B,) with
        one metric, (metrics, B) with several. The model runs in eval mode and is left in its own mode."""
        model = next(iter(self.space.variants.values())).model  # the study's model, whatever scores it
        with evaluation_mode(model):
            scores = self._scores(None, explainer)[0]
        return scores[0] if len(self.metrics) == 1 else scores

    def _shown(self, explainer) -> torch.Tensor:
        """The attributions of the first samples, as the heatmaps show them."""
        x, y = self.inputs[self.shown], self.targets[self.shown]
        return per_input_feature(explainer.attribute(x, y), x)

    def _chunks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.inputs), self.batch_size):
            yield self.inputs[start : start + self.batch_size], self.targets[start : start + self.batch_size]

    def _scores(self, trial: optuna.Trial | None, explainer):
        """(metrics, B) scores and the shown samples' attributions (for the figures), in the order of ``shown``."""
        (outcome,), _ = self._scores_together([trial], [explainer])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _scores_together(
        self, trials: Sequence[optuna.Trial | None], explainers: Sequence[Any]
    ) -> tuple[list[Any], list[float]]:
        """Per configuration, what :meth:`_scores` returns or the exception that ended it (pruned, failed), and the
        seconds it took (its metrics and its share of the attributions); each chunk's attributions come from one
        forward pass where the engine covers the model (``attribute_many``)."""
        outcomes: list[Any] = [None] * len(explainers)
        seconds = [0.0] * len(explainers)
        scores: list[list[torch.Tensor]] = [[] for _ in explainers]
        shown: list[dict[int, torch.Tensor]] = [{} for _ in explainers]
        start = 0
        for x, y in self._chunks():
            raise_if_received()  # a Ctrl-C or SIGTERM whose exception Python swallowed ends the trials here
            active = [i for i, outcome in enumerate(outcomes) if outcome is None]
            if not active:  # every configuration pruned or failed: no chunk left to score
                break
            began = time.perf_counter()
            with signals_allowed():  # the computation: a Ctrl-C may stop it anywhere (see _interrupt)
                attributed = attribute_many([explainers[i] for i in active], x, y, failures="return")
            share = (time.perf_counter() - began) / len(active)
            for i, attributions in zip(active, attributed):
                began = time.perf_counter()
                try:
                    if isinstance(attributions, Exception):
                        raise attributions
                    attributions = per_input_feature(attributions, x)
                    rows = []
                    for index, (metric, reference) in enumerate(zip(self.metrics, self.references)):
                        metric_began = time.perf_counter()
                        with signals_allowed():
                            rows.append(self._evaluate(metric, reference, x, y, attributions, start))
                        self.metric_seconds[index] += time.perf_counter() - metric_began
                    self.metric_samples += len(x)
                    scores[i].append(torch.stack(rows))
                    shown[i].update({j: attributions[j - start] for j in self.shown if start <= j < start + len(x)})
                    trial = trials[i]
                    if trial is not None and len(self.metrics) == 1:
                        self._report(trial, torch.cat(scores[i], dim=1)[0], start)
                except Exception as error:  # pruned or failed: this configuration stops, the others go on
                    outcomes[i] = error
                seconds[i] += share + time.perf_counter() - began
            start += len(x)
        raise_if_received()
        for i, (scored, kept) in enumerate(zip(scores, shown)):
            if outcomes[i] is None:
                outcomes[i] = (torch.cat(scored, dim=1), torch.stack([kept[j] for j in self.shown]) if kept else None)
        return outcomes, seconds

    def _evaluate(self, metric, reference, x, y, attributions, start) -> torch.Tensor:
        """One chunk's scores (the chunk starts at sample ``start``): with its slice of the reference scores and,
        for a metric that uses them, of the evidence masks."""
        kwargs = {} if reference is None else {"reference": reference[start : start + len(x)]}
        if metric.uses_masks:
            assert self.masks is not None, "a metric that uses masks is refused without them (tune() checks)"
            kwargs["masks"] = self.masks[start : start + len(x)]
        scores = metric.evaluate(x, y, attributions, **kwargs).detach().float().cpu()
        if not torch.isfinite(scores).all():
            raise FloatingPointError(f"{type(metric).__name__} returned non-finite scores {scores.tolist()}")
        return scores

    def _report(self, trial: optuna.Trial, scored: torch.Tensor, start: int) -> None:
        """Each new sample's score (``scored[start:]``) as the intermediate value at its sample index; prune between
        chunks, never a first (enqueued) trial nor one of the fair budget's stage (:mod:`tuner.search._fair`).

        A pruned trial reports the mean of the samples it scored at step ``n_samples`` (one past the last sample
        index) before it stops: Optuna gives a pruned trial its last step's value, so the dashboard shows that
        mean, not the score of the last sample scored."""
        for offset, score in enumerate(scored[start:].tolist()):
            trial.report(score, step=start + offset)
        done = len(scored)
        protected = any(
            trial.user_attrs.get(key) for key in ("default_configuration", "initial_configuration", "search_stage")
        )
        if done < len(self.inputs) and not protected and trial.should_prune():
            trial.set_user_attr("pruned_after_samples", done)
            trial.report(float(scored.mean()), step=len(self.inputs))
            raise optuna.TrialPruned(f"pruned after {done} samples")

    def _repeated(self, trial: optuna.Trial) -> optuna.trial.FrozenTrial | None:
        """A finished trial with exactly these parameters: its value answers this one."""
        for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if other.params == trial.params and other.values and not any(map(math.isnan, other.values)):
                return other
        return None

    def _upload_heatmaps(
        self,
        trial: optuna.Trial,
        attributions: torch.Tensor,
        values: Sequence[float],
        scores: Sequence[float] | None = None,
    ) -> None:
        """The trial's figure (:func:`tuner.figures._heatmaps.trial_figure`): the shown samples, their maps and scores,
        the parameters and the trial's value, uploaded as the trial's artifact."""
        assert self.artifacts is not None, "heatmaps are uploaded only where artifacts are stored"
        names = [type(metric).__name__ for metric in self.metrics]
        value = ", ".join(f"{name} = {v:.4f}" for name, v in zip(names, values))
        params = self.space.explainer_kwargs(trial.params)
        described = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        title = f"trial {trial.number} · {trial.user_attrs.get('explainer', '')} · {value}\n{described or 'defaults'}"
        details = [f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in params.items()]
        details += [
            f"{value} (mean of {len(self.inputs)} samples)",
            "red: relevance for the target class",
            "blue: relevance against it",
        ]
        samples = self._samples(str(trial.study.user_attrs.get("targets", "label")))
        with tempfile.TemporaryDirectory() as folder:
            path = trial_figure(
                samples,
                attributions,
                Path(folder) / f"heatmaps-trial-{trial.number}.png",
                title=title,
                scores=scores,
                score_name=names[0],
                details=details,
            )
            upload_heatmap(self.artifacts, trial, path, "image/png")

    def _samples(self, targets_from: str) -> Samples:
        """The shown samples with the model's predictions (one forward pass, once per study)."""
        if self._figure_samples is None:
            model = next(iter(self.space.variants.values())).model
            x = self.inputs[self.shown]
            with evaluation_mode(model), torch.no_grad():
                output = model(x)
            predictions = output.argmax(-1).tolist() if output.ndim == 2 else None
            self._figure_samples = Samples(
                x,
                self.targets[self.shown].tolist(),
                predictions,
                display_bounds(self.space.variants.values()),
                "target" if targets_from == "prediction" else "label",
                None if self.masks is None else self.masks[self.shown],
                sample_words(model, x),
            )
        return self._figure_samples


def _tell(trial: optuna.Trial, outcome: Callable[[], float | tuple[float, ...]]) -> None:
    """Tell the study a companion trial's result: its value(s), or pruned or failed as ``outcome()`` raises."""
    study = trial.study
    try:
        values = outcome()
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
    except TrialFailed:
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, values)


def _raise(error: Exception) -> float:
    raise error
