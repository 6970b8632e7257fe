"""The conservation guard: a model part that no rule or canonizer covers is refused before any work.

LRP is only as good as its coverage: a module whose arithmetic zennit's hooks cannot see (a residual add inside an
unknown block, an unknown non-linearity, parameters used in a custom forward) makes relevance leak or multiply
while the heatmap still looks plausible. :func:`check_supported` names such a module instead.
"""

from __future__ import annotations

import importlib

from torch import nn
from torchvision.ops import StochasticDepth
from torchvision.ops.misc import Permute
from zennit.layer import Sum
from zennit.types import Activation, AvgPool, BatchNorm, Linear, MaxPool

from .canonizers import canonized_types, is_plain_sequential


class UnsupportedModelError(ValueError):
    """The model contains a module that no LRP rule or canonizer covers (pass ``allow_unsupported=True`` to
    explain it anyway, knowing that relevance may not be conserved)."""


#: leaf modules with a rule in every composite (or with an exact gradient: max pooling, reshaping)
RULED: tuple[type, ...] = (
    Linear,
    BatchNorm,
    AvgPool,
    MaxPool,
    Activation,
    nn.LayerNorm,
    Sum,
)

#: containers, and modules that are the identity or a re-indexing in eval mode: the gradient passes relevance on
STRUCTURAL: tuple[type, ...] = (
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.ChannelShuffle,
    StochasticDepth,
    Permute,
    nn.Embedding,
)

#: the sequence modules of :mod:`explainers.canonizers` (canonized there)
SEQUENCE: tuple[type, ...] = (
    nn.MultiheadAttention,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
    nn.RNNBase,
    *(norm for norm in (getattr(nn, "RMSNorm", None),) if norm is not None),
)


def _hidden_arithmetic() -> tuple[type, ...]:
    """torchvision blocks whose forward adds, multiplies or pools outside any module (residuals, gates, layer
    scale, class tokens): covered only when a registered canonizer rewrites them."""
    from torchvision.models import (
        convnext,
        densenet,
        efficientnet,
        maxvit,
        mnasnet,
        mobilenetv2,
        mobilenetv3,
        regnet,
    )

    googlenet_module = importlib.import_module("torchvision.models.googlenet")  # the attribute is the builder
    inception_module = importlib.import_module("torchvision.models.inception")
    from torchvision.models import swin_transformer, vision_transformer
    from torchvision.ops import SqueezeExcitation

    return (
        SqueezeExcitation,
        mobilenetv2.InvertedResidual,
        mobilenetv3.InvertedResidual,
        mnasnet._InvertedResidual,
        efficientnet.MBConv,
        efficientnet.FusedMBConv,
        regnet.ResBottleneckBlock,
        convnext.CNBlock,
        densenet.DenseNet,
        googlenet_module.GoogLeNet,
        inception_module.Inception3,
        inception_module.InceptionA,
        inception_module.InceptionB,
        inception_module.InceptionC,
        inception_module.InceptionD,
        inception_module.InceptionE,
        inception_module.InceptionAux,
        googlenet_module.InceptionAux,
        swin_transformer.SwinTransformerBlock,
        swin_transformer.ShiftedWindowAttention,
        vision_transformer.Encoder,
        vision_transformer.EncoderBlock,
        vision_transformer.VisionTransformer,
        maxvit.MBConv,
        maxvit.PartitionAttentionLayer,
        maxvit.RelativePositionalMultiHeadAttention,
    )


def check_supported(model: nn.Module) -> None:
    """Raise :class:`UnsupportedModelError` naming the first module no rule or canonizer covers.

    Covered: modules with a rule (linear, convolution, BatchNorm, pooling, element-wise activations, LayerNorm),
    identity-like modules (dropout, flatten, stochastic depth), sequence modules, and blocks a registered
    canonizer rewrites. A container (a module with children and no parameters of its own) is fine when its
    children are; a module with parameters of its own, or a leaf of unknown type, is refused.
    """
    canonized = canonized_types()
    known = RULED + STRUCTURAL + SEQUENCE + canonized
    hidden = _hidden_arithmetic()
    for name, module in model.named_modules():
        if isinstance(module, known) or is_plain_sequential(module):
            continue  # covered itself; its children are checked in their turn
        if isinstance(module, hidden):
            raise UnsupportedModelError(
                f"{name or 'the model itself'} ({type(module).__module__}.{type(module).__qualname__}) computes "
                "outside its submodules (a residual add, a gate or a functional pooling) and no canonizer covers "
                "it, so relevance would not be conserved; pass allow_unsupported=True to explain it anyway."
            )
        has_children = next(module.children(), None) is not None
        own_parameters = [key for key, value in module._parameters.items() if value is not None]
        if has_children and not own_parameters:
            continue
        what = (
            f"has parameters of its own ({', '.join(own_parameters)})"
            if own_parameters
            else "is a layer without a known LRP rule"
        )
        path = name or "the model itself"
        raise UnsupportedModelError(
            f"{path} ({type(module).__module__}.{type(module).__qualname__}) {what}: no LRP rule or canonizer "
            "covers it, so relevance would not be conserved. Replace it by covered modules, register a canonizer "
            "(explainers.register_canonizer), or pass allow_unsupported=True to explain it anyway."
        )
