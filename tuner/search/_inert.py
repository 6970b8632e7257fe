"""Tunables that cannot change a ranking-based score: found before a study, dropped from its space.

A parameter is inert on a model when its two extreme values give attributions that are equal up to a
positive scale per sample (for example epsilon of EpsilonPlus on a ResNet, which touches only the single
dense head and so only rescales the map). Every ranking-based metric then scores both extremes the same,
and trials spent on that parameter are wasted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import optuna
import torch

from explainers import LRPBase

logger = logging.getLogger("tuner")
N_PROBE_SAMPLES = 2  # an inert parameter is confirmed on each; a parameter that matters stops at the first


def inert_tunables(
    base: LRPBase, inputs: torch.Tensor, targets: torch.Tensor, *, tolerance: float = 1e-5
) -> dict[str, str]:
    """{name: reason} for each float tunable of ``base`` whose extremes give the same attributions up to scale.

    A conditional tunable is tested with its condition met (e.g. ``lower_gamma`` with ``lower_rule="gamma"``).
    """
    inert = {}
    for name, tunable in base.tunables().items():
        if tunable.type is not float or tunable.categorical:
            continue
        low_value, high_value = tunable.bounds
        condition = {other: values[0] for other, values in tunable.condition}
        low = base.set_kwargs(**condition, **{name: low_value})
        high = base.set_kwargs(**condition, **{name: high_value})
        if _same_on_every_sample(low, high, inputs, targets, tolerance):
            inert[name] = (
                f"{name}={low_value:g} and {name}={high_value:g} give attributions equal up to a "
                f"positive scale on {len(inputs)} samples: it cannot change a ranking"
            )
    return inert


def _same_on_every_sample(
    low: LRPBase, high: LRPBase, inputs: torch.Tensor, targets: torch.Tensor, tolerance: float
) -> bool:
    """Whether both explainers' attributions are equal up to a positive scale on each sample, one sample at a
    time: the first sample that differs settles it (most parameters matter, and then one sample is attributed)."""
    for index in range(len(inputs)):
        x, y = inputs[index : index + 1], targets[index : index + 1]
        try:
            a, b = low.attribute(x, y), high.attribute(x, y)
        except Exception:  # an extreme fails (NaN attributions, an error): the parameter matters
            return False
        if not _same_up_to_positive_scale(a, b, tolerance):  # type: ignore[arg-type]  # one input tensor
            return False
    return True


def held_at_default(
    study: optuna.Study, bases: Sequence[LRPBase], inputs: torch.Tensor, targets: torch.Tensor, drop_inert: bool
) -> dict[str, list[str]]:
    """The tunables held at their default per class name: found on a new study (recorded in it and logged;
    the dashboard note lists them, :func:`tuner.search._study.study_note`), read back when the study is resumed."""
    if "inert_parameters" in study.user_attrs:
        return {variant: list(reasons) for variant, reasons in study.user_attrs["inert_parameters"].items()}
    found: dict[str, dict[str, str]] = {}
    if drop_inert:
        x, y = inputs[:N_PROBE_SAMPLES], targets[:N_PROBE_SAMPLES]
        found = {type(base).__name__: inert_tunables(base, x, y) for base in bases}
        found = {variant: reasons for variant, reasons in found.items() if reasons}
    study.set_user_attr("inert_parameters", found)
    if found:
        lines = [
            f"- {variant}.{name}: {reason}" for variant, reasons in found.items() for name, reason in reasons.items()
        ]
        logger.warning("held at their defaults (inert on this model):\n%s", "\n".join(lines))
    return {variant: list(reasons) for variant, reasons in found.items()}


def _same_up_to_positive_scale(a: torch.Tensor, b: torch.Tensor, tolerance: float) -> bool:
    a, b = a.flatten(1).double(), b.flatten(1).double()
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=1)
    return bool((cosine > 1 - tolerance).all())
