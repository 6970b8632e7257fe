"""How a study searches: samplers and pruners (by name or as Optuna objects), their seeds, and the chunks a
trial is scored in so that a pruner has points to stop it at."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import optuna

from registry import Registry

from ._space import SearchSpace

SamplerFactory = Callable[[SearchSpace, int], optuna.samplers.BaseSampler]
PrunerFactory = Callable[[], optuna.pruners.BasePruner]

SAMPLERS: Registry[SamplerFactory] = Registry("sampler")
"""Sampler name -> factory ``(space, seed) -> sampler``, in registration order (the command line's choices)."""
PRUNERS: Registry[PrunerFactory] = Registry("pruner")
"""Pruner name -> factory ``() -> pruner``, in registration order (the command line's choices)."""

SINGLE_OBJECTIVE_SAMPLERS = ("gp", "cmaes", "grid")
PRUNING_CHECKS = 4  # with a pruner, a trial is scored in up to this many chunks and may stop after each
MIN_PRUNING_CHUNK = 4

Sampler = str | optuna.samplers.BaseSampler
Pruner = str | optuna.pruners.BasePruner


def register_sampler(name: str) -> Callable[[SamplerFactory], SamplerFactory]:
    """A decorator that makes a sampler factory ``(space, seed) -> sampler`` known as ``name``."""
    return SAMPLERS.register(name)


def register_pruner(name: str) -> Callable[[PrunerFactory], PrunerFactory]:
    """A decorator that makes a pruner factory ``() -> pruner`` known as ``name``."""
    return PRUNERS.register(name)


@register_sampler("tpe")
def _tpe(space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    """Multivariate TPE, grouped when the space has several explainers' branches (the default); with a constant liar,
    so that trials asked together (or by other workers) while others run are not proposed next to them."""
    return optuna.samplers.TPESampler(
        seed=seed, multivariate=True, group=space.several, n_startup_trials=5, constant_liar=True
    )


@register_sampler("random")
def _random(space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    """Uniform random configurations (a baseline for the others)."""
    return optuna.samplers.RandomSampler(seed=seed)


@register_sampler("grid")
def _grid(space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    """Every point of the space's grid, in a seeded order."""
    return optuna.samplers.GridSampler(space.grid(), seed=seed)


@register_sampler("gp")
def _gp(space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    """Gaussian-process Bayesian optimisation (one objective)."""
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=5)


@register_sampler("cmaes")
def _cmaes(space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    """CMA-ES (one objective), quiet about the categorical parameters it samples independently."""
    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=5, warn_independent_sampling=False)


@register_pruner("wilcoxon")
def _wilcoxon() -> optuna.pruners.BasePruner:
    """Stop a trial whose paired per-sample scores are significantly worse than the best trial's (the default)."""
    return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=4)


@register_pruner("median")
def _median() -> optuna.pruners.BasePruner:
    """Stop a trial whose running score is below the median of earlier trials at the same step."""
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=4)


@register_pruner("none")
def _none() -> optuna.pruners.BasePruner:
    """Never stop a trial."""
    return optuna.pruners.NopPruner()


def check_strategies(sampler: Sampler, pruner: Pruner, n_objectives: int) -> None:
    """Raise ValueError for an unknown sampler or pruner name (one line, with the closest name), or a one-objective
    sampler with several metrics; TypeError for something that is neither a name nor an Optuna object."""
    if isinstance(sampler, str):
        SAMPLERS.get(sampler)
    if isinstance(pruner, str):
        PRUNERS.get(pruner)
    if not isinstance(sampler, (str, optuna.samplers.BaseSampler)):
        raise TypeError(f"sampler must be a name ({', '.join(SAMPLERS)}) or an Optuna sampler, got {sampler!r}")
    if not isinstance(pruner, (str, optuna.pruners.BasePruner)):
        raise TypeError(f"pruner must be a name ({', '.join(PRUNERS)}) or an Optuna pruner, got {pruner!r}")
    if n_objectives > 1 and sampler in SINGLE_OBJECTIVE_SAMPLERS:
        raise ValueError(f"the {sampler} sampler searches one objective; use tpe or random with several metrics")


def make_pruner(pruner: Pruner, n_objectives: int) -> optuna.pruners.BasePruner:
    """The pruner: an Optuna object as given, or one by name. A multi-objective study reports no per-sample
    scores, so it is never pruned."""
    if n_objectives > 1:
        return optuna.pruners.NopPruner()
    if not isinstance(pruner, str):
        return pruner
    return PRUNERS.get(pruner)()


def make_sampler(sampler: Sampler, space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler: an Optuna object as given (with its own seed), or one by name seeded with ``seed``."""
    if not isinstance(sampler, str):
        return sampler
    return SAMPLERS.get(sampler)(space, seed)


def sampler_seed(seed: int, study: optuna.Study, storage: str | None) -> int:
    """A resumed study continues the seed sequence instead of drawing the first run's configurations again.
    On storages made for several workers (PostgreSQL, journal files) each process also mixes in its id, so
    workers that start together do not propose the same configurations; those studies are not reproducible."""
    offset = len(study.get_trials(deepcopy=False))
    if storage is not None and not storage.startswith("sqlite"):
        offset += os.getpid() * 7919
    return (seed + offset) % 2**32


def chunk_size(batch_size: int, n_samples: int, pruning: bool) -> int:
    """Samples attributed at once: ``batch_size``, but with a pruner at most a quarter of the samples, so that
    it can stop a trial after each quarter. Never under 4: the fewest paired scores on which the Wilcoxon
    test can reject (p = 1/16). On a CPU small batches cost no more per sample."""
    if not pruning:
        return batch_size
    return min(batch_size, max(MIN_PRUNING_CHUNK, math.ceil(n_samples / PRUNING_CHECKS)))
