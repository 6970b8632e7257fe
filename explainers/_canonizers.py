"""Automatic choice of zennit canonizers for a model (docs/architecture.md: canonizers are automatic, and honest).

A canonizer rewrites a block whose forward hides arithmetic from zennit's module hooks (a residual ``x + f(x)``, a
gate ``g(x) * x``, a functional pooling) into hookable parts, for the duration of one attribution. Canonizers for
other architectures register themselves here with :func:`register_canonizer`, beside their classes (as zennit's
``register_composite``); :func:`default_canonizers` picks those whose module types the model contains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn
from torchvision.models import VGG, ResNet
from zennit.canonizers import Canonizer, MergeBatchNorm
from zennit.torchvision import ResNetCanonizer, VGGCanonizer
from zennit.types import BatchNorm, Linear

CanonizerFactory = Callable[[], Canonizer]

#: (module types, canonizer factory): a canonizer is used when the model contains one of its module types
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


def default_canonizers(model: nn.Module) -> list[Canonizer]:
    """Fresh canonizers that make ``model`` fit for LRP.

    torchvision ResNets get zennit's ResNetCanonizer (relevance split at every residual add instead of doubling),
    VGGs the VGGCanonizer, anything else :class:`AdjacentMergeBatchNorm`; then the registered canonizers of the
    blocks the model contains (:mod:`explainers._vision_cnn`, ...), and the sequence canonizers for attention,
    LayerNorm and recurrent layers (:mod:`explainers._sequence`).
    """
    _register_builtin_canonizers()
    modules = list(model.modules())
    if any(isinstance(module, ResNet) for module in modules):
        canonizers: list[Canonizer] = [ResNetCanonizer()]
    elif any(isinstance(module, VGG) for module in modules):
        canonizers = [VGGCanonizer()]
    else:
        canonizers = [AdjacentMergeBatchNorm()]
    for types, factory in CANONIZERS:
        if any(isinstance(module, types) for module in modules):
            canonizers.append(factory())
    return canonizers + _sequence_canonizers(model)


class ExactMergeBatchNorm(MergeBatchNorm):
    """zennit's BatchNorm merging, made exact: zennit's merge leaves the BatchNorm computing ``x / sqrt(1 + eps)``;
    here the merged BatchNorm is skipped (its ``forward`` is the identity while merged, restored afterwards), so the
    canonized model computes what the original does. Its ``eps`` stays as it is: torch up to 2.11 refuses a
    BatchNorm with ``eps=0`` even in eval mode. A subclass says which pairs to merge (``apply``)."""

    def register(self, linears: tuple[nn.Module, ...], batch_norm: nn.Module) -> None:
        super().register(linears, batch_norm)
        batch_norm.forward = _identity  # an instance attribute: the class's forward is back once it is deleted

    def remove(self) -> None:
        super().remove()
        del self.batch_norm.forward


def _identity(input: torch.Tensor) -> torch.Tensor:
    return input


class AdjacentMergeBatchNorm(ExactMergeBatchNorm):
    """Merge a BatchNorm into the linear layer it directly follows inside an ``nn.Sequential``, and nowhere else.

    zennit's ``SequentialMergeBatchNorm`` pairs a BatchNorm with the previous leaf in registration order, which is
    not always the layer that feeds it (DenseNet's pre-activation BatchNorm follows a concatenation): merging there
    is wrong and can fail on the channel count. Here only consecutive children of a plain ``nn.Sequential`` (whose
    forward is the chain of its children) are paired. A BatchNorm left unmerged gets the identity rule, which is
    LRP-0 of the per-channel scaling when its shift is zero, so relevance is conserved either way.
    """

    def apply(self, root_module: nn.Module) -> list[MergeBatchNorm]:
        instances = []
        for linear, batch_norm in adjacent_pairs(root_module, Linear, BatchNorm):
            if batch_norm.weight is None or batch_norm.running_mean is None:
                continue  # nothing to merge without an affine map and running statistics
            if linear.weight.shape[0] != batch_norm.num_features:
                continue
            instance = self.copy()
            instance.register((linear,), batch_norm)
            instances.append(instance)
        return instances


def adjacent_pairs(root: nn.Module, first: type, second: type) -> Iterator[tuple[nn.Module, nn.Module]]:
    """Pairs ``(a, b)`` of modules where ``b`` takes the output of ``a`` inside a plain ``nn.Sequential``."""
    for module in root.modules():
        if not _is_plain_sequential(module):
            continue
        children = list(module.children())
        for before, after in zip(children, children[1:]):
            last, head = _last_of(before), _first_of(after)
            if isinstance(last, first) and isinstance(head, second):
                yield last, head


def _is_plain_sequential(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _last_of(module: nn.Module) -> nn.Module:
    while _is_plain_sequential(module) and len(module):
        module = module[-1]
    return module


def _first_of(module: nn.Module) -> nn.Module:
    while _is_plain_sequential(module) and len(module):
        module = module[0]
    return module


def _register_builtin_canonizers() -> None:
    """Import the modules whose canonizers register themselves (once; imports are cached)."""
    from . import (  # noqa: F401
        _vision_cnn,
        _vision_concat,  # noqa: F401
        _vision_transformers,
    )


def _sequence_canonizers(model: nn.Module) -> list[Canonizer]:
    from ._sequence import sequence_canonizers  # local import: only models with such layers need it

    return sequence_canonizers(model)
