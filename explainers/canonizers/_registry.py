"""The canonizer registry: each canonizer registers itself beside its class with :func:`register_canonizer` (as
zennit's ``register_composite``); :func:`explainers.canonizers.default_canonizers` picks those whose module types
the model contains."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from zennit.canonizers import Canonizer

from registry import Registry

CanonizerFactory = Callable[[], Canonizer]


class RegisteredCanonizer(NamedTuple):
    """A canonizer factory and the module types it is used for (a model that contains one of them gets it)."""

    module_types: tuple[type, ...]
    factory: CanonizerFactory


#: canonizer class name -> (module types, factory), in registration order (the order the canonizers are applied in)
CANONIZERS: Registry[RegisteredCanonizer] = Registry("canonizer")


def register_canonizer(*module_types: type) -> Callable[[CanonizerFactory], CanonizerFactory]:
    """Class decorator: use this canonizer for every model that contains a module of ``module_types``.

    The types also count as covered for :func:`explainers.check_supported` (their canonizer handles them).
    """

    def decorator(factory: CanonizerFactory) -> CanonizerFactory:
        name = getattr(factory, "__name__", repr(factory))
        CANONIZERS.add(name, RegisteredCanonizer(module_types, factory))
        return factory

    return decorator


def canonized_types() -> tuple[type, ...]:
    """Every module type some registered canonizer handles."""
    return tuple(kind for types, _ in CANONIZERS.values() for kind in types)
