"""The explainers by name: each class registers itself where it is defined, as zennit's composites do
(``@register_composite``); nobody else keeps a list. Installed packages add explainers through entry points
(group ``lrp_tuner.explainers``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from registry import Registry

if TYPE_CHECKING:
    from ._base import LRPBase

Explainer = TypeVar("Explainer", bound="type[LRPBase]")

ENTRY_POINT_GROUP = "lrp_tuner.explainers"


def _checked(cls: type[LRPBase]) -> type[LRPBase]:
    """Refuse a class whose tunables are not all keywords its constructor takes (a mismatch fails at import)."""
    missing = sorted(set(cls.TUNABLES) - set(cls.accepted_kwargs()))
    if missing:
        raise TypeError(f"{cls.__name__} declares tunables its constructor does not take: {', '.join(missing)}")
    return cls


EXPLAINERS: Registry[type[LRPBase]] = Registry("explainer", ENTRY_POINT_GROUP, check=_checked)
"""Short name -> explainer class, in the order the classes were registered (class names resolve as aliases)."""

DEFAULT_EXPLAINERS: list[type[LRPBase]] = []
"""The classes a study searches when it is given none (the four LRP variants)."""


def register_explainer(name: str, *, default: bool = True) -> Callable[[Explainer], Explainer]:
    """A class decorator that makes an explainer known as ``name`` (and by its class name).

    ``default``: a study that is given no explainer searches this class. Registration checks that every
    tunable is a keyword the class accepts, so a name mismatch fails at import, not in a study.
    """

    def register(cls: Explainer) -> Explainer:
        EXPLAINERS.add(name, cls, aliases=(cls.__name__,))
        if default and cls not in DEFAULT_EXPLAINERS:
            DEFAULT_EXPLAINERS.append(cls)
        return cls

    return register


def get_explainer(name: str) -> type[LRPBase]:
    """The explainer class registered as ``name`` (a short name such as ``epsilon_plus``, or a class name); an
    unknown name raises a one-line ValueError with the closest valid name."""
    return EXPLAINERS.get(name)
