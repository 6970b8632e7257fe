"""The canonizer registry: each canonizer registers itself beside its class with :func:`register_canonizer` (as
zennit's ``register_composite``); :func:`explainers.canonizers.default_canonizers` picks those whose module types
the model contains."""

from __future__ import annotations

from collections.abc import Callable

from zennit.canonizers import Canonizer

CanonizerFactory = Callable[[], Canonizer]

#: (module types, canonizer factory), in registration order: a canonizer is used when the model contains one of
#: its module types
CANONIZERS: list[tuple[tuple[type, ...], CanonizerFactory]] = []


def register_canonizer(*module_types: type) -> Callable[[CanonizerFactory], CanonizerFactory]:
    """Class decorator: use this canonizer for every model that contains a module of ``module_types``.

    The types also count as covered for :func:`explainers.check_supported` (their canonizer handles them).
    """

    def decorator(factory: CanonizerFactory) -> CanonizerFactory:
        CANONIZERS.append((module_types, factory))
        return factory

    return decorator


def canonized_types() -> tuple[type, ...]:
    """Every module type some registered canonizer handles."""
    return tuple(kind for types, _ in CANONIZERS for kind in types)
