"""Canonizers for torchvision's concatenating architectures: DenseNet, GoogLeNet and Inception v3.

Concatenation itself needs no rule (each channel keeps its relevance), but these models hide other arithmetic from
zennit's module hooks, which the canonizers here make explicit for the duration of one attribution:

- functional average pooling (``F.adaptive_avg_pool2d`` in DenseNet's head, ``F.avg_pool2d`` in Inception v3's
  blocks): the gradient spreads relevance uniformly, so a preceding relu's gradient drops the share of its inactive
  units, and with ``count_include_pad`` the padding's share at the borders is lost; through an ``nn.AvgPool2d``
  module it gets zennit's ``Norm`` rule, proportional to the activations, and keeps it all;
- the per-channel affine ``transform_input`` of GoogLeNet and Inception v3 (``x * a + b``): the identity rule, so the
  input keeps the relevance its transformed copy receives instead of a fraction ``a`` of it;
- BatchNorm merged into the convolution whose output it normalizes (``BasicConv2d``'s conv -> bn, DenseNet's
  conv1 -> norm2), never into another one. DenseNet's pre-activation BatchNorms follow a concatenation and keep the
  identity rule (``Pass``), which is exact with a zero shift.

Functional ``max_pool2d`` (Inception v3's InceptionB/D) and ``relu`` need nothing: their gradient passes relevance to
the maximum, respectively keeps it where the unit is active.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.densenet import DenseNet, _DenseLayer
from torchvision.models.googlenet import BasicConv2d as GoogLeNetBasicConv2d
from torchvision.models.googlenet import GoogLeNet
from torchvision.models.googlenet import InceptionAux as GoogLeNetInceptionAux
from torchvision.models.inception import BasicConv2d as InceptionBasicConv2d
from torchvision.models.inception import (
    Inception3,
    InceptionA,
    InceptionAux,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
)
from zennit.canonizers import AttributeCanonizer, CompositeCanonizer, MergeBatchNorm

from ._merge import ExactMergeBatchNorm
from ._parts import ForwardCanonizer, relay
from ._registry import register_canonizer


class NamedPairMergeBatchNorm(ExactMergeBatchNorm):
    """Merge a block's BatchNorm into the convolution it directly follows, the pairs named per block type.

    ``PAIRS`` maps a block type to the names of its (convolution, BatchNorm) children; the merge is exact
    (:class:`explainers.canonizers.ExactMergeBatchNorm`).
    """

    PAIRS: ClassVar[dict[type, tuple[str, str]]] = {}

    def apply(self, root_module: nn.Module) -> list[MergeBatchNorm]:
        instances = []
        for module in root_module.modules():
            names = next((pair for kind, pair in self.PAIRS.items() if isinstance(module, kind)), None)
            if names is None:
                continue
            linear, batch_norm = (getattr(module, name) for name in names)
            if not isinstance(linear, nn.Conv2d) or not isinstance(batch_norm, nn.BatchNorm2d):
                continue  # a custom conv_block: nothing known to merge
            if batch_norm.weight is None or batch_norm.running_mean is None:
                continue
            instance = self.copy()
            instance.register((linear,), batch_norm)
            instances.append(instance)
        return instances


class DenseLayerMergeBatchNorm(NamedPairMergeBatchNorm):
    """DenseNet's conv1 -> norm2 (a true sequence); norm1 follows a concatenation and is left alone."""

    PAIRS: ClassVar[dict[type, tuple[str, str]]] = {_DenseLayer: ("conv1", "norm2")}


@register_canonizer(GoogLeNetBasicConv2d, InceptionBasicConv2d)
class BasicConv2dMergeBatchNorm(NamedPairMergeBatchNorm):
    """GoogLeNet's and Inception v3's ``BasicConv2d``: conv -> bn -> relu, the bn merged into the conv."""

    PAIRS: ClassVar[dict[type, tuple[str, str]]] = {
        GoogLeNetBasicConv2d: ("conv", "bn"),
        InceptionBasicConv2d: ("conv", "bn"),
    }


def _dense_layer_forward(self: _DenseLayer, input: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """``_DenseLayer.forward`` without gradient checkpointing (``memory_efficient``), which would re-run the hooked
    modules during the backward pass; in eval mode it computes the same."""
    features = torch.cat([input] if isinstance(input, torch.Tensor) else list(input), 1)
    bottleneck = self.conv1(self.relu1(self.norm1(features)))
    new_features = self.conv2(self.relu2(self.norm2(bottleneck)))
    if self.drop_rate > 0:
        new_features = F.dropout(new_features, p=self.drop_rate, training=self.training)
    return new_features


def _densenet_forward(self: DenseNet, x: torch.Tensor) -> torch.Tensor:
    """``DenseNet.forward`` with its functional relu and adaptive average pooling as hookable modules."""
    out = self.lrp_pool(self.lrp_relu(self.features(x)))
    return self.classifier(torch.flatten(out, 1))


class _DenseLayerForward(ForwardCanonizer):
    def __init__(self) -> None:
        super().__init__(
            lambda module: (
                {"forward": _dense_layer_forward.__get__(module)} if isinstance(module, _DenseLayer) else None
            )
        )


@register_canonizer(_DenseLayer)
class DenseLayerCanonizer(CompositeCanonizer):
    """DenseNet's dense layer: conv1 -> norm2 merged, and an explicit forward that also covers
    ``memory_efficient=True`` (checkpointing) :cite:p:`huang2017densely`."""

    def __init__(self) -> None:
        super().__init__((_DenseLayerForward(), DenseLayerMergeBatchNorm()))


@register_canonizer(DenseNet)
class DenseNetCanonizer(ForwardCanonizer):
    """DenseNet's head ``relu -> adaptive_avg_pool2d``, functional in torchvision, through modules: the pooling gets
    the AvgPool rule (zennit's ``Norm``, relevance in proportion to the activations) instead of the gradient's
    uniform ``R / HW``, whose share at the relu's inactive units the relu's gradient would drop."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(module: nn.Module) -> dict | None:
        if not isinstance(module, DenseNet):
            return None
        return {
            "forward": _densenet_forward.__get__(module),
            "lrp_relu": nn.ReLU(),
            "lrp_pool": nn.AdaptiveAvgPool2d((1, 1)),
        }


@register_canonizer(GoogLeNet, Inception3)
class TransformInputCanonizer(AttributeCanonizer):
    """GoogLeNet's and Inception v3's ``transform_input`` (a per-channel ``x * a + b`` that maps ImageNet
    normalization to the ported weights' one) with the identity rule: relevance passes to the input unchanged,
    as through any element-wise map of the input (:cite:p:`achtibat2024attnlrp`), instead of being scaled by ``a``."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(name: str, module: nn.Module) -> dict | None:
        if not isinstance(module, (GoogLeNet, Inception3)) or not module.transform_input:
            return None
        transform = type(module)._transform_input.__get__(module)
        return {"_transform_input": lambda x: relay(transform, x)}


def _inception_a_forward(self: InceptionA, x: torch.Tensor) -> torch.Tensor:
    branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
    branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
    return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, self.branch_pool(self.lrp_pool(x))], 1)


def _inception_c_forward(self: InceptionC, x: torch.Tensor) -> torch.Tensor:
    branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
    branch7x7dbl = x
    for index in range(1, 6):
        branch7x7dbl = getattr(self, f"branch7x7dbl_{index}")(branch7x7dbl)
    return torch.cat([self.branch1x1(x), branch7x7, branch7x7dbl, self.branch_pool(self.lrp_pool(x))], 1)


def _inception_e_forward(self: InceptionE, x: torch.Tensor) -> torch.Tensor:
    branch3x3 = self.branch3x3_1(x)
    branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
    branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
    branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1)
    return torch.cat([self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(self.lrp_pool(x))], 1)


def _inception_aux_forward(self: InceptionAux, x: torch.Tensor) -> torch.Tensor:
    x = self.conv1(self.conv0(self.lrp_pool(x)))
    return self.fc(torch.flatten(self.lrp_adaptive_pool(x), 1))


def _googlenet_aux_forward(self: GoogLeNetInceptionAux, x: torch.Tensor) -> torch.Tensor:
    x = torch.flatten(self.conv(self.lrp_adaptive_pool(x)), 1)
    return self.fc2(self.dropout(F.relu(self.fc1(x))))


#: block type -> (explicit forward, its pooling modules); InceptionB and InceptionD pool by max only (nothing to do)
_POOLED_FORWARDS: dict[type[nn.Module], tuple[Callable[..., torch.Tensor], Callable[[], dict[str, nn.Module]]]] = {
    InceptionA: (_inception_a_forward, lambda: {"lrp_pool": nn.AvgPool2d(3, stride=1, padding=1)}),
    InceptionC: (_inception_c_forward, lambda: {"lrp_pool": nn.AvgPool2d(3, stride=1, padding=1)}),
    InceptionE: (_inception_e_forward, lambda: {"lrp_pool": nn.AvgPool2d(3, stride=1, padding=1)}),
    InceptionAux: (
        _inception_aux_forward,
        lambda: {"lrp_pool": nn.AvgPool2d(5, stride=3), "lrp_adaptive_pool": nn.AdaptiveAvgPool2d((1, 1))},
    ),
    GoogLeNetInceptionAux: (_googlenet_aux_forward, lambda: {"lrp_adaptive_pool": nn.AdaptiveAvgPool2d((4, 4))}),
}


@register_canonizer(InceptionA, InceptionB, InceptionC, InceptionD, InceptionE, InceptionAux, GoogLeNetInceptionAux)
class InceptionPoolingCanonizer(ForwardCanonizer):
    """Inception v3's blocks (and both auxiliary heads) with their functional average pooling through
    ``nn.AvgPool2d`` modules of the same configuration, which get the AvgPool rule (zennit's ``Norm``)
    :cite:p:`szegedy2016rethinking`.

    ``F.avg_pool2d(x, 3, stride=1, padding=1)`` counts the zero padding, so its gradient hands the padding's share of
    a border window's relevance to nothing; the ``Norm`` rule divides by the window's actual sum and keeps it all.
    InceptionB and InceptionD max-pool, which the gradient already handles exactly; the auxiliary heads run in
    training mode only and are canonized for completeness.
    """

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(module: nn.Module) -> dict | None:
        found = next((entry for kind, entry in _POOLED_FORWARDS.items() if isinstance(module, kind)), None)
        if found is None:
            return None
        forward, pools = found
        return {"forward": forward.__get__(module), **pools()}
