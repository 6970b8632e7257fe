"""Tunables that cannot change a ranking-based score: found before a study, dropped from its space.

A parameter is inert on a model when its two extreme values give attributions that are equal up to a
positive scale per sample (for example epsilon of EpsilonPlus on a ResNet, which touches only the single
dense head and so only rescales the map). Every ranking-based metric then scores both extremes the same,
and trials spent on that parameter are wasted.
"""
from typing import Dict

import torch

from explainers import LRPBase



def inert_tunables(base: LRPBase, inputs: torch.Tensor, targets: torch.Tensor, *,
                   tolerance: float = 1e-5) -> Dict[str, str]:
    """{name: reason} for each float tunable of ``base`` whose extremes give the same attributions up to scale.

    A conditional tunable is tested with its condition met (e.g. ``lower_gamma`` with ``lower_rule="gamma"``).
    """
    inert = {}
    conditions = base.get_conditions()
    for name, (kind, spec) in base.get_tunables().items():
        if kind is not float or "low" not in spec:
            continue
        condition = {other: values[0] for other, values in conditions.get(name, {}).items()}
        try:
            low = base.set_kwargs(**condition, **{name: spec["low"]}).attribute(inputs, targets)
            high = base.set_kwargs(**condition, **{name: spec["high"]}).attribute(inputs, targets)
        except Exception:  # an extreme fails (NaN attributions, an error): the parameter matters
            continue
        if _same_up_to_positive_scale(low, high, tolerance):
            inert[name] = (f"{name}={spec['low']:g} and {name}={spec['high']:g} give attributions equal up to a "
                           f"positive scale on {len(inputs)} samples: it cannot change a ranking")
    return inert


def _same_up_to_positive_scale(a: torch.Tensor, b: torch.Tensor, tolerance: float) -> bool:
    a, b = a.flatten(1).double(), b.flatten(1).double()
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=1)
    return bool((cosine > 1 - tolerance).all())
