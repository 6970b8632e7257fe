"""The canonizers a model gets: BatchNorm merged into its linear layer (zennit's sequential merge for ResNets and VGGs,
else where it follows its linear layer), then every registered canonizer whose module types the model contains."""

from __future__ import annotations

from torch import nn
from torchvision.models import VGG, ResNet
from zennit.canonizers import Canonizer, SequentialMergeBatchNorm

from . import _registry
from ._attention import AttentionCanonizer, EncoderCanonizer, TransformerLayerCanonizer, check_attention
from ._merge import AdjacentMergeBatchNorm
from ._recurrent import RecurrentCanonizer, check_recurrent

#: the canonizers of attention, transformer and recurrent layers (a subset of the registered ones)
SEQUENCE_CANONIZERS = (AttentionCanonizer, TransformerLayerCanonizer, EncoderCanonizer, RecurrentCanonizer)


def default_canonizers(model: nn.Module) -> list[Canonizer]:
    """Fresh canonizers that make ``model`` fit for LRP.

    torchvision ResNets and VGGs get zennit's ``SequentialMergeBatchNorm`` (as zennit's ResNet and VGG canonizers),
    anything else :class:`AdjacentMergeBatchNorm`; then the registered canonizers of the blocks the model contains
    (a ResNet's blocks: relevance split at every residual add instead of doubling), in registration order (vision
    blocks, then attention, transformer and recurrent layers). Raises ``NotImplementedError`` for sequence-module
    options the rules do not cover, before anything is changed.
    """
    modules = _checked_modules(model)
    if any(isinstance(module, (ResNet, VGG)) for module in modules):
        canonizers: list[Canonizer] = [SequentialMergeBatchNorm()]
    else:
        canonizers = [AdjacentMergeBatchNorm()]
    return canonizers + _registered(modules, lambda factory: True)


def sequence_canonizers(model: nn.Module) -> list[Canonizer]:
    """Fresh canonizers for the sequence modules in ``model`` (an empty list when it has none).

    Raises ``NotImplementedError`` for module options the rules do not cover (``nn.LSTM(proj_size>0)``,
    ``nn.MultiheadAttention(add_bias_kv=True)`` or ``add_zero_attn=True``), before anything is changed.
    """
    return _registered(_checked_modules(model), lambda factory: factory in SEQUENCE_CANONIZERS)


def _checked_modules(model: nn.Module) -> list[nn.Module]:
    modules = list(model.modules())
    for module in modules:
        check_attention(module)
        check_recurrent(module)
    return modules


def _registered(modules: list[nn.Module], wanted) -> list[Canonizer]:
    """A fresh instance of each registered canonizer that ``wanted`` and whose module types are in ``modules``."""
    return [
        factory()
        for types, factory in _registry.CANONIZERS.values()
        if wanted(factory) and any(isinstance(module, types) for module in modules)
    ]
