"""The four LRP variants: each declares its composite and its search space; LRPBase does the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn
from zennit.canonizers import Canonizer
from zennit.composites import LayerMapComposite, layer_map_base
from zennit.core import Composite
from zennit.rules import Epsilon
from zennit.types import Convolution, Linear

from ._base import ForwardArgumentExtractor, LRPBase, TargetLayerOrListOfTargetLayers
from ._registry import register_explainer
from .rules import (
    LSTM,
    RNN,
    Attention,
    ConservingEpsilonAlpha2Beta1,
    ConservingEpsilonPlus,
    FastEpsilonGammaBox,
    sequence_layer_map,
)

Stabilizer = float | Callable[[torch.Tensor], torch.Tensor]
Bound = float | torch.Tensor
LOG_UNIT_INTERVAL = {"low": 1e-6, "high": 1.0, "log": True}


class _ZennitVariant(LRPBase):
    """An LRP variant made of zennit rules: its composite is rebuilt from the current parameters."""

    epsilon: Stabilizer
    stabilizer: Stabilizer

    def build_composite(self, model: nn.Module) -> Composite:
        raise NotImplementedError

    def sequence_layer_map(self) -> list:
        """Rules for the parts the sequence canonizers introduce (attention, LayerNorm, recurrent steps);
        they must come with those canonizers, which every variant gets."""

        return sequence_layer_map(self.epsilon, self.stabilizer)


def check_positive(**values: Any) -> None:
    """Each value is a non-negative number or a callable (a zennit stabilizer function)."""
    for name, value in values.items():
        if callable(value):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a non-negative number or a callable, got {value!r}")


def check_bounds(low: Bound, high: Bound) -> None:
    """Input bounds for the z-box rule: ``low`` below ``high`` everywhere (floats or per-channel tensors)."""
    if not bool(torch.all(torch.as_tensor(low) < torch.as_tensor(high))):
        raise ValueError(f"low must be below high everywhere, got low={low!r}, high={high!r}")


@register_explainer("uniform_epsilon")
class LRPUniformEpsilon(_ZennitVariant):
    """LRP-epsilon on every linear and convolutional layer :cite:p:`bach2015pixel`.

    R_i = sum_j x_i w_ij / (z_j + epsilon * sign(z_j)) R_j. ``epsilon=0`` gives LRP-0 (gradient × input on
    ReLU networks); a large epsilon absorbs weak and contradictory relevance and gives sparser maps.
    Attention, LayerNorm and recurrent layers get the rules of :mod:`explainers.rules`.
    """

    SUPPORTED_MODULES: ClassVar[list[type]] = [Linear, Convolution, LSTM, RNN, Attention]
    TUNABLES = {"epsilon": (float, LOG_UNIT_INTERVAL)}
    PARAMETERS = {"epsilon": 0.25, "stabilizer": 1e-6}

    def __init__(
        self,
        model: nn.Module,
        epsilon: Stabilizer = PARAMETERS["epsilon"],
        stabilizer: Stabilizer = PARAMETERS["stabilizer"],
        zennit_canonizers: list[Canonizer] | None = None,
        forward_arg_extractor: ForwardArgumentExtractor | None = None,
        additional_forward_arg_extractor: ForwardArgumentExtractor | None = None,
        layer: TargetLayerOrListOfTargetLayers | None = None,
        n_classes: int | None = None,
        *,
        allow_unsupported: bool = False,
        seed: str = "sign",
    ) -> None:
        check_positive(epsilon=epsilon, stabilizer=stabilizer)
        self.epsilon = epsilon
        self.stabilizer = stabilizer
        super().__init__(
            model,
            zennit_canonizers=zennit_canonizers,
            forward_arg_extractor=forward_arg_extractor,
            additional_forward_arg_extractor=additional_forward_arg_extractor,
            layer=layer,
            n_classes=n_classes,
            allow_unsupported=allow_unsupported,
            seed=seed,
        )

    def build_composite(self, model: nn.Module) -> Composite:
        layer_map = (
            self.sequence_layer_map()
            + layer_map_base(self.stabilizer)
            + [
                (Convolution, Epsilon(epsilon=self.epsilon)),
                (nn.Linear, Epsilon(epsilon=self.epsilon)),
            ]
        )
        return LayerMapComposite(layer_map=layer_map, canonizers=self.canonizers(model))


@register_explainer("epsilon_gamma_box")
class LRPEpsilonGammaBox(_ZennitVariant):
    """zennit's EpsilonGammaBox :cite:p:`montavon2019layer`: ZBox on the first convolution, gamma on the
    other convolutions, epsilon on dense layers.

    Gamma adds ``gamma`` times the positive weights: ``gamma=0`` is LRP-0, a large gamma approaches
    z-plus (only positive contributions). ``low``/``high`` bound the input (floats or per-channel tensors
    shaped (1, C, 1, 1)). On models with one dense layer epsilon only rescales the map
    (docs/architecture.md, "Known traps").
    """

    SUPPORTED_MODULES: ClassVar[list[type]] = [Convolution]
    TUNABLES = {"epsilon": (float, LOG_UNIT_INTERVAL), "gamma": (float, LOG_UNIT_INTERVAL)}
    PARAMETERS = {"low": -3.0, "high": 3.0, "epsilon": 1e-6, "gamma": 0.25, "stabilizer": 1e-6}

    def __init__(
        self,
        model: nn.Module,
        low: Bound = PARAMETERS["low"],
        high: Bound = PARAMETERS["high"],
        epsilon: Stabilizer = PARAMETERS["epsilon"],
        gamma: float = PARAMETERS["gamma"],
        stabilizer: Stabilizer = PARAMETERS["stabilizer"],
        zennit_canonizers: list[Canonizer] | None = None,
        forward_arg_extractor: ForwardArgumentExtractor | None = None,
        additional_forward_arg_extractor: ForwardArgumentExtractor | None = None,
        layer: TargetLayerOrListOfTargetLayers | None = None,
        n_classes: int | None = None,
        *,
        allow_unsupported: bool = False,
        seed: str = "sign",
    ) -> None:
        check_positive(epsilon=epsilon, gamma=gamma, stabilizer=stabilizer)
        check_bounds(low, high)
        self.low = low
        self.high = high
        self.epsilon = epsilon
        self.gamma = gamma
        self.stabilizer = stabilizer
        super().__init__(
            model,
            zennit_canonizers=zennit_canonizers,
            forward_arg_extractor=forward_arg_extractor,
            additional_forward_arg_extractor=additional_forward_arg_extractor,
            layer=layer,
            n_classes=n_classes,
            allow_unsupported=allow_unsupported,
            seed=seed,
        )

    def build_composite(self, model: nn.Module) -> Composite:
        return FastEpsilonGammaBox(
            low=self.low,
            high=self.high,
            epsilon=self.epsilon,
            gamma=self.gamma,
            stabilizer=self.stabilizer,
            layer_map=self.sequence_layer_map(),
            canonizers=self.canonizers(model),
        )


class _ConvolutionComposite(_ZennitVariant):
    """A zennit composite with a convolution rule and epsilon on dense layers, parametrised by epsilon and
    the stabilizer only: a subclass names the composite (``COMPOSITE``) and documents its rule."""

    COMPOSITE: ClassVar[type[Composite]]
    SUPPORTED_MODULES: ClassVar[list[type]] = [Convolution]
    TUNABLES = {"epsilon": (float, LOG_UNIT_INTERVAL)}
    PARAMETERS = {"epsilon": 1e-6, "stabilizer": 1e-6}

    def __init__(
        self,
        model: nn.Module,
        epsilon: Stabilizer = PARAMETERS["epsilon"],
        stabilizer: Stabilizer = PARAMETERS["stabilizer"],
        zennit_canonizers: list[Canonizer] | None = None,
        forward_arg_extractor: ForwardArgumentExtractor | None = None,
        additional_forward_arg_extractor: ForwardArgumentExtractor | None = None,
        layer: TargetLayerOrListOfTargetLayers | None = None,
        n_classes: int | None = None,
        *,
        allow_unsupported: bool = False,
        seed: str = "sign",
    ) -> None:
        check_positive(epsilon=epsilon, stabilizer=stabilizer)
        self.epsilon = epsilon
        self.stabilizer = stabilizer
        super().__init__(
            model,
            zennit_canonizers=zennit_canonizers,
            forward_arg_extractor=forward_arg_extractor,
            additional_forward_arg_extractor=additional_forward_arg_extractor,
            layer=layer,
            n_classes=n_classes,
            allow_unsupported=allow_unsupported,
            seed=seed,
        )

    def build_composite(self, model: nn.Module) -> Composite:
        return self.COMPOSITE(
            epsilon=self.epsilon,
            stabilizer=self.stabilizer,
            layer_map=self.sequence_layer_map(),
            canonizers=self.canonizers(model),
        )


@register_explainer("epsilon_plus")
class LRPEpsilonPlus(_ConvolutionComposite):
    """zennit's EpsilonPlus :cite:p:`kohlbrenner2020towards`: z-plus on convolutions, epsilon on dense layers.

    z-plus keeps only positive contributions; ``epsilon=0`` makes the dense layers LRP-0. A neuron without positive
    contributions passes its relevance to the negative ones (:class:`explainers.rules.ConservingZPlus`).
    """

    COMPOSITE = ConservingEpsilonPlus


@register_explainer("epsilon_alpha2_beta1")
class LRPEpsilonAlpha2Beta1(_ConvolutionComposite):
    """zennit's EpsilonAlpha2Beta1 :cite:p:`bach2015pixel`: alpha=2, beta=1 on convolutions, epsilon on dense layers.

    Positive contributions count twice, negative ones once against; ``epsilon=0`` makes dense layers LRP-0. A neuron
    with only one kind gives it all its relevance (:class:`explainers.rules.ConservingAlphaBeta`).
    """

    COMPOSITE = ConservingEpsilonAlpha2Beta1
