"""BatchNorm merged into the linear layer that feeds it, exactly (the merged BatchNorm is skipped), and the pairs
of adjacent modules inside a plain ``nn.Sequential``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeGuard, cast

import torch
from torch import nn
from zennit.canonizers import MergeBatchNorm
from zennit.types import BatchNorm, Linear


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
            if cast(torch.Tensor, linear.weight).shape[0] != batch_norm.num_features:
                continue
            instance = self.copy()
            instance.register((linear,), batch_norm)
            instances.append(instance)
        return instances


def adjacent_pairs(root: nn.Module, first: type, second: type) -> Iterator[tuple[nn.Module, nn.Module]]:
    """Pairs ``(a, b)`` of modules where ``b`` takes the output of ``a`` inside a plain ``nn.Sequential``."""
    for module in root.modules():
        if not is_plain_sequential(module):
            continue
        children = list(module.children())
        for before, after in zip(children, children[1:]):
            last, head = _last_of(before), _first_of(after)
            if isinstance(last, first) and isinstance(head, second):
                yield last, head


def is_plain_sequential(module: nn.Module) -> TypeGuard[nn.Sequential]:
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _last_of(module: nn.Module) -> nn.Module:
    while is_plain_sequential(module) and len(module):
        module = module[-1]
    return module


def _first_of(module: nn.Module) -> nn.Module:
    while is_plain_sequential(module) and len(module):
        module = module[0]
    return module
