"""Canonizers for torchvision's convolutional blocks (residual adds, gates, layer scale).

Under a zennit composite, what flows backward between hooked modules is relevance, so arithmetic a block's forward
does outside its submodules must say how it passes relevance on (the pattern of zennit's
``ResNetBottleneckCanonizer``). Each canonizer here gives one torchvision block class an explicit forward that
computes exactly the same output from hookable parts, for the duration of one attribution:

- residual adds ``shortcut + branch``: through a zennit :class:`~zennit.layer.Sum`, whose ``Norm`` rule splits the
  relevance in proportion to the two terms (:func:`residual`), instead of copying it into both (which doubles the
  relevance at every block);
- gates ``x * g(x)`` (squeeze-and-excitation): the gate held constant, all relevance to ``x``, none into the gate's
  path (signal-take-all, :cite:p:`arras2017explaining`);
- layer scale (a constant per-channel factor): the identity rule, relevance passes unchanged, like a BatchNorm
  scale (AttnLRP's treatment of element-wise scalings, :cite:p:`achtibat2024attnlrp`).

Stochastic depth and dropout keep their own modules and semantics (the identity in eval mode).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import (
    convnext,
    efficientnet,
    mnasnet,
    mobilenetv2,
    mobilenetv3,
    regnet,
    resnet,
)
from torchvision.ops import SqueezeExcitation
from zennit.canonizers import AttributeCanonizer

from ._parts import add, relay, signal_take_all, term_sum
from ._registry import register_canonizer


def residual(block: nn.Module, shortcut: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """``shortcut + branch`` through ``block.canonizer_sum``: relevance split in proportion to the two terms."""
    return add(block.canonizer_sum, shortcut, branch)


class BlockCanonizer(AttributeCanonizer):
    """Give every module of type ``block_type`` the canonizer's ``forward`` (and, for residual blocks, a fresh
    ``canonizer_sum``) for the duration of an attribution; :meth:`remove` restores the class's own forward.

    A subclass names its ``block_type`` and writes ``forward(block, x)`` as a static method, bound to each block
    instance, that computes exactly the block's output (as zennit's ``ResNetBottleneckCanonizer``).
    """

    block_type: type[nn.Module] | tuple[type[nn.Module], ...]
    #: whether the forward adds a residual (and so needs ``canonizer_sum``)
    has_residual: bool = True

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @classmethod
    def _attribute_map(cls, name: str, module: nn.Module) -> dict | None:
        if not isinstance(module, cls.block_type):
            return None
        attributes: dict = {"forward": cls.forward.__get__(module)}
        if cls.has_residual:
            attributes["canonizer_sum"] = term_sum()
        return attributes

    @staticmethod
    def forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def copy(self) -> BlockCanonizer:
        return self.__class__()


@register_canonizer(resnet.BasicBlock, resnet.Bottleneck)
class ResNetBlockCanonizer(BlockCanonizer):
    """ResNet's basic and bottleneck blocks :cite:p:`he2016deep`: ``relu(downsample(x) + branch(x))``, the add
    through a Sum, as zennit's ResNet canonizers (same layers, same order), with the terms stacked along a new first
    dimension (:func:`~explainers.canonizers._parts.term_sum`) rather than zennit's last."""

    block_type = (resnet.BasicBlock, resnet.Bottleneck)

    @staticmethod
    def forward(block: resnet.BasicBlock | resnet.Bottleneck, x: torch.Tensor) -> torch.Tensor:
        out = block.relu(block.bn1(block.conv1(x)))
        out = block.bn2(block.conv2(out))
        if isinstance(block, resnet.Bottleneck):
            out = block.bn3(block.conv3(block.relu(out)))
        shortcut = x if block.downsample is None else block.downsample(x)
        return block.relu(residual(block, shortcut, out))


@register_canonizer(SqueezeExcitation)
class SqueezeExcitationCanonizer(BlockCanonizer):
    """Squeeze-and-excitation ``x * sigmoid(fc2(act(fc1(avgpool(x)))))`` :cite:p:`hu2018squeeze` (in EfficientNet,
    MobileNet v3, RegNet Y): the gate held constant, all relevance to ``x`` and none into the gate's path
    (signal-take-all, :cite:p:`arras2017explaining`). The plain product would pass relevance times the gate to ``x``
    and the rest into the gate's convolutions, neither of which conserves. The gate is detached, so no backward pass
    runs through its path at all (and its convolutions' rules never see an undefined gradient)."""

    block_type = SqueezeExcitation
    has_residual = False

    @staticmethod
    def forward(block: SqueezeExcitation, x: torch.Tensor) -> torch.Tensor:
        return signal_take_all(block._scale(x).detach(), x)


#: each inverted residual block type -> (the attribute holding its branch, the flag saying it adds its input)
INVERTED_RESIDUALS: dict[type[nn.Module], tuple[str, str]] = {
    mobilenetv2.InvertedResidual: ("conv", "use_res_connect"),
    mobilenetv3.InvertedResidual: ("block", "use_res_connect"),
    mnasnet._InvertedResidual: ("layers", "apply_residual"),
}


@register_canonizer(*INVERTED_RESIDUALS)
class InvertedResidualCanonizer(BlockCanonizer):
    """The inverted residuals of MobileNet v2 :cite:p:`sandler2018mobilenetv2`, v3 :cite:p:`howard2019searching`
    and MNASNet :cite:p:`tan2019mnasnet`: ``x + branch(x)`` through a Sum (MobileNet v3's squeeze-and-excitation
    has its own canonizer)."""

    block_type = tuple(INVERTED_RESIDUALS)

    @staticmethod
    def forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        branch_name, flag = INVERTED_RESIDUALS[type(block)]
        branch = getattr(block, branch_name)(x)
        return residual(block, x, branch) if getattr(block, flag) else branch


class _EfficientNetCanonizer(BlockCanonizer):
    """EfficientNet's ``x + stochastic_depth(block(x))`` through a Sum (stochastic depth: identity in eval mode)."""

    @staticmethod
    def forward(block: efficientnet.MBConv | efficientnet.FusedMBConv, x: torch.Tensor) -> torch.Tensor:
        if not block.use_res_connect:
            return block.block(x)
        return residual(block, x, block.stochastic_depth(block.block(x)))


@register_canonizer(efficientnet.MBConv)
class MBConvCanonizer(_EfficientNetCanonizer):
    """EfficientNet's MBConv :cite:p:`tan2019efficientnet` (v1 b0..b7 and v2): the residual through a Sum."""

    block_type = efficientnet.MBConv


@register_canonizer(efficientnet.FusedMBConv)
class FusedMBConvCanonizer(_EfficientNetCanonizer):
    """EfficientNet v2's FusedMBConv :cite:p:`tan2021efficientnetv2`: the residual through a Sum."""

    block_type = efficientnet.FusedMBConv


@register_canonizer(regnet.ResBottleneckBlock)
class RegNetCanonizer(BlockCanonizer):
    """RegNet's residual bottleneck :cite:p:`radosavovic2020designing`: ``activation(proj(x) + f(x))``, the add
    through a Sum (RegNet Y's squeeze-and-excitation inside ``f`` has its own canonizer)."""

    block_type = regnet.ResBottleneckBlock

    @staticmethod
    def forward(block: regnet.ResBottleneckBlock, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if block.proj is None else block.proj(x)
        return block.activation(residual(block, shortcut, block.f(x)))


@register_canonizer(convnext.CNBlock)
class ConvNeXtCanonizer(BlockCanonizer):
    """ConvNeXt's block :cite:p:`liu2022convnet`: ``x + stochastic_depth(layer_scale * block(x))``.

    The layer scale is a constant per-channel factor: the identity rule passes relevance through it unchanged
    (as a BatchNorm scale); the plain product would multiply the relevance by the scale. The add goes through a
    Sum, whose proportional split sees the scaled branch. LayerNorm2d inside gets the LayerNorm rule.
    """

    block_type = convnext.CNBlock

    @staticmethod
    def forward(block: convnext.CNBlock, x: torch.Tensor) -> torch.Tensor:
        scaled = relay(lambda branch: block.layer_scale * branch, block.block(x))
        return residual(block, x, block.stochastic_depth(scaled))
