"""``tune()``'s options, grouped by what they decide: the objective, the budget, the search, the report and the
storage. Each group is a small frozen value object that checks its fields when it is built, so a bad value fails
where it was written, before any model, data or study is touched. The command line builds the same objects from
its flags (:func:`tuner.cli._options.options_from_args`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from explainers.attnlrp import TEXT_BASELINES
from metrics import BASELINES, Metric, metric_class

from .evidence.panel._panel import PanelSpec, check_panel
from .evidence.panel._scoring import DEFAULT_PANEL_BUDGET, DEFAULT_PANEL_MIN_SECONDS
from .search._budget import Budget, integer
from .search._strategies import Pruner, Sampler, check_strategies

MetricSpec = str | Metric | Sequence[str | Metric]

__all__ = ["Budget", "Objective", "Report", "Search", "Storage", "check_metric_kwargs"]


@dataclass(frozen=True)
class Objective:
    """What a trial is scored by: a metric name or object (or several: a multi-objective study), the
    perturbation ``baseline`` (None: the study's default, a blur for images, see
    :func:`metrics.perturbation.study_baseline`; for a text model ``"mask"``, ``"unk"`` or ``"zero"``, see
    :class:`explainers.attnlrp.TextClassifier`) and the metric's other settings."""

    metric: MetricSpec = "abpc"
    baseline: Any = None
    metric_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metric_kwargs is None:
            object.__setattr__(self, "metric_kwargs", {})  # None reads as "no settings", as tune() once took it
        names = [m if isinstance(m, str) else type(m).__name__ for m in self.metrics]
        if not names:
            raise ValueError("objective needs at least one metric")
        for metric in self.metrics:
            if isinstance(metric, str):
                metric_class(metric)  # an unknown name: one line with the valid names and the closest one
            elif not isinstance(metric, Metric):
                raise TypeError(f"a metric is a name or a metrics.Metric, got {metric!r}")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"each metric may be an objective only once; repeated: {', '.join(repeated)}")
        if not isinstance(self.metric_kwargs, Mapping):
            raise TypeError(f"metric_kwargs must be a dict of settings, got {type(self.metric_kwargs).__name__}")
        named = dict.fromkeys((*BASELINES, *TEXT_BASELINES))
        if isinstance(self.baseline, str) and self.baseline not in named:
            raise ValueError(f"baseline must be one of {', '.join(named)}, a number or a tensor; got {self.baseline!r}")
        if self.baseline is not None and "baseline" in self.metric_kwargs:
            raise ValueError("give the baseline once: as Objective(baseline=...) or in metric_kwargs, not both")
        check_metric_kwargs(list(self.metrics), self.settings())

    @property
    def metrics(self) -> list[str | Metric]:
        """The objective's metrics as a list (one for a single-objective study)."""
        return list(self.metric) if isinstance(self.metric, (list, tuple)) else [self.metric]  # type: ignore[list-item]

    def settings(self) -> dict[str, Any]:
        """The metric settings the user gave: ``metric_kwargs`` and, where given, the baseline."""
        given = dict(self.metric_kwargs)
        if self.baseline is not None:
            given["baseline"] = self.baseline
        return given


@dataclass(frozen=True)
class Search:
    """How configurations are proposed and stopped: the ``sampler`` and ``pruner`` (a name or an Optuna object),
    the ``seed``, the samples per forward pass (``batch_size``), whether trials share work (``share_work``: the
    unperturbed scores once, repeated configurations answered from the study; off for benchmarks only), whether
    tunables that change nothing on this model are held at their default (``drop_inert``), and how many trials are
    asked from the sampler at once and scored together, their attributions from one forward pass
    (``trials_together``; 1: one at a time, each proposal informed by every earlier result)."""

    sampler: Sampler = "tpe"
    pruner: Pruner = "wilcoxon"
    seed: int = 0
    batch_size: int = 16
    share_work: bool = True
    drop_inert: bool = True
    trials_together: int = 4

    def __post_init__(self) -> None:
        check_strategies(self.sampler, self.pruner, n_objectives=1)  # the objectives are checked by tune()
        integer("seed", self.seed, minimum=None)
        integer("batch_size", self.batch_size, minimum=1)
        integer("trials_together", self.trials_together, minimum=1)


@dataclass(frozen=True)
class Report:
    """What the verdict holds: the robustness ``panel`` (metric names, ``(name, settings)`` pairs or Metric objects;
    None: the default panel; False or []: none) and its time budget (``panel_budget``: a fraction of the time the
    trials took, 0 for no panel; never less than ``panel_min_seconds``), captum's ``reference_rows``, the heatmaps
    per trial figure (``n_heatmaps``) and the trial progress bar."""

    panel: PanelSpec = None
    panel_budget: float = DEFAULT_PANEL_BUDGET
    panel_min_seconds: float = DEFAULT_PANEL_MIN_SECONDS
    reference_rows: bool = True
    n_heatmaps: int = 4
    show_progress_bar: bool = True

    def __post_init__(self) -> None:
        integer("n_heatmaps", self.n_heatmaps, minimum=0)
        for name in ("panel_budget", "panel_min_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number of at least 0, got {value!r}")
        if isinstance(self.panel, (list, tuple)):
            check_panel([entry for entry in self.panel if isinstance(entry, tuple)])


@dataclass(frozen=True)
class Storage:
    """Where the study lives: an Optuna storage ``url`` (None: in memory) and, for a server storage, the seconds
    between a running trial's heartbeats (a trial whose process died is marked failed after a few missed ones)."""

    url: str | None = None
    heartbeat_interval: int | None = 60

    def __post_init__(self) -> None:
        if self.url is not None and not isinstance(self.url, str):
            raise TypeError(f"storage must be a URL string, got {type(self.url).__name__}")
        if self.heartbeat_interval is not None:
            integer("heartbeat_interval", self.heartbeat_interval, minimum=1)

    @classmethod
    def of(cls, storage: str | Storage | None) -> Storage:
        """``tune()``'s ``storage`` argument (a URL, None or a Storage) as a Storage."""
        return storage if isinstance(storage, Storage) else cls(storage)


def check_metric_kwargs(metric_list: list[str | Metric], kwargs: Mapping[str, Any]) -> None:
    """Raise ValueError for a ``metric_kwargs`` key that none of the named metrics takes (a typo would
    otherwise be dropped silently and the study would measure something else than asked)."""
    named = [metric_class(m) for m in metric_list if isinstance(m, str)]
    if not named or len(named) < len(metric_list):
        return  # metric objects are built by the caller
    accepted = frozenset().union(*(cls.accepted_settings() for cls in named))
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(
            f"metric_kwargs {', '.join(map(repr, unknown))} are not settings of "
            f"{', '.join(c.__name__ for c in named)}; valid: {', '.join(sorted(accepted))}"
        )
