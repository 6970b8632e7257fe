"""Automatic choice of zennit canonizers for a model (docs/architecture.md: canonizers are automatic)."""

from __future__ import annotations

from torch import nn
from torchvision.models import VGG, ResNet
from zennit.canonizers import Canonizer, SequentialMergeBatchNorm
from zennit.torchvision import ResNetCanonizer, VGGCanonizer


def default_canonizers(model: nn.Module) -> list[Canonizer]:
    """Fresh canonizers that make ``model`` fit for LRP.

    torchvision ResNets get zennit's ResNetCanonizer (relevance split at every residual add instead
    of doubling), VGGs the VGGCanonizer, anything else SequentialMergeBatchNorm; attention, LayerNorm
    and recurrent layers get the sequence canonizers of :mod:`explainers._sequence`.
    """
    modules = list(model.modules())
    if any(isinstance(module, ResNet) for module in modules):
        canonizers: list[Canonizer] = [ResNetCanonizer()]
    elif any(isinstance(module, VGG) for module in modules):
        canonizers = [VGGCanonizer()]
    else:
        canonizers = [SequentialMergeBatchNorm()]
    return canonizers + _sequence_canonizers(model)


def _sequence_canonizers(model: nn.Module) -> list[Canonizer]:
    from ._sequence import sequence_canonizers  # local import: only models with such layers need it

    return sequence_canonizers(model)
