"""The explainers by name: each class registers itself where it is defined, as zennit's composites do
(``@register_composite``); nobody else keeps a list."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ._base import LRPBase

Explainer = TypeVar("Explainer", bound="type[LRPBase]")

EXPLAINERS: dict[str, type[LRPBase]] = {}
"""Short name -> explainer class, in the order the classes were registered."""

DEFAULT_EXPLAINERS: list[type[LRPBase]] = []
"""The classes a study searches when it is given none (the four LRP variants)."""


def register_explainer(name: str, *, default: bool = True) -> Callable[[Explainer], Explainer]:
    """A class decorator that makes an explainer known as ``name`` (and by its class name).

    ``default``: a study that is given no explainer searches this class. Registration checks that every
    tunable is a keyword the class accepts, so a name mismatch fails at import, not in a study.
    """

    def register(cls: Explainer) -> Explainer:
        if name in EXPLAINERS and EXPLAINERS[name] is not cls:
            raise ValueError(f"an explainer named {name!r} is already registered ({EXPLAINERS[name].__name__})")
        missing = sorted(set(cls.TUNABLES) - set(cls.accepted_kwargs()))
        if missing:
            raise TypeError(f"{cls.__name__} declares tunables its constructor does not take: {', '.join(missing)}")
        EXPLAINERS[name] = cls
        if default and cls not in DEFAULT_EXPLAINERS:
            DEFAULT_EXPLAINERS.append(cls)
        return cls

    return register


def get_explainer(name: str) -> type[LRPBase]:
    """The explainer class registered as ``name`` (a short name such as ``epsilon_plus``, or a class name)."""
    for short, cls in EXPLAINERS.items():
        if name in (short, cls.__name__):
            return cls
    close = difflib.get_close_matches(name, [*EXPLAINERS, *(cls.__name__ for cls in EXPLAINERS.values())], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown explainer {name!r}{hint}; valid names: {', '.join(EXPLAINERS)} (or their class names)")
