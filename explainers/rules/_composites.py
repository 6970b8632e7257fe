"""The composites of the variants that use the conserving rules."""

from __future__ import annotations

import torch
from zennit.composites import LayerMapComposite, SpecialFirstLayerMapComposite, layer_map_base
from zennit.core import BasicHook, Hook
from zennit.rules import Epsilon, ZBox
from zennit.types import Convolution

from ._alphabeta import ConservingAlphaBeta
from ._gamma import FastGamma
from ._shares import StabilizerLike
from ._zplus import ConservingZPlus


def _epsilon_dense_map(
    layer_map: list | None,
    stabilizer: StabilizerLike,
    convolution_rule: Hook,
    epsilon: StabilizerLike,
    zero_params: list[str] | None,
) -> list:
    """zennit's layer map of its Epsilon* composites: ``layer_map`` first, then its base map, ``convolution_rule`` on
    convolutions and epsilon on dense layers."""
    return (
        list(layer_map or [])
        + layer_map_base(stabilizer)
        + [(Convolution, convolution_rule), (torch.nn.Linear, Epsilon(epsilon=epsilon, zero_params=zero_params))]
    )


class _EpsilonDenseComposite(LayerMapComposite):
    """A zennit-style composite: a conserving rule on convolutions, epsilon on dense layers, ``layer_map``
    prepended; a subclass names its convolution rule (:meth:`convolution_rule`)."""

    def __init__(
        self,
        epsilon: StabilizerLike = 1e-6,
        stabilizer: StabilizerLike = 1e-6,
        layer_map: list | None = None,
        zero_params: list[str] | None = None,
        canonizers: list | None = None,
    ) -> None:
        layer_map = _epsilon_dense_map(
            layer_map, stabilizer, self.convolution_rule(stabilizer, zero_params), epsilon, zero_params
        )
        super().__init__(layer_map=layer_map, canonizers=canonizers)

    @staticmethod
    def convolution_rule(stabilizer: StabilizerLike, zero_params: list[str] | None) -> BasicHook:
        raise NotImplementedError


class ConservingEpsilonPlus(_EpsilonDenseComposite):
    """zennit's EpsilonPlus composite with :class:`ConservingZPlus` on convolutions (epsilon on dense layers).

    Same signature as :class:`zennit.composites.EpsilonPlus`; ``layer_map`` is prepended.
    """

    @staticmethod
    def convolution_rule(stabilizer: StabilizerLike, zero_params: list[str] | None) -> BasicHook:
        return ConservingZPlus(stabilizer=stabilizer, zero_params=zero_params)


class ConservingEpsilonAlpha2Beta1(_EpsilonDenseComposite):
    """zennit's EpsilonAlpha2Beta1 composite with :class:`ConservingAlphaBeta` (alpha=2, beta=1) on convolutions.

    Same signature as :class:`zennit.composites.EpsilonAlpha2Beta1`; ``layer_map`` is prepended.
    """

    @staticmethod
    def convolution_rule(stabilizer: StabilizerLike, zero_params: list[str] | None) -> BasicHook:
        return ConservingAlphaBeta(alpha=2.0, beta=1.0, stabilizer=stabilizer, zero_params=zero_params)


class FastEpsilonGammaBox(SpecialFirstLayerMapComposite):
    """zennit's EpsilonGammaBox composite with :class:`FastGamma` on convolutions: ZBox on the first convolution,
    gamma on the others, epsilon on dense layers.

    Same signature as :class:`zennit.composites.EpsilonGammaBox`; ``layer_map`` and ``first_map`` are prepended.
    """

    def __init__(
        self,
        low: float | torch.Tensor,
        high: float | torch.Tensor,
        epsilon: StabilizerLike = 1e-6,
        gamma: float = 0.25,
        stabilizer: StabilizerLike = 1e-6,
        layer_map: list | None = None,
        first_map: list | None = None,
        zero_params: list[str] | None = None,
        canonizers: list | None = None,
    ) -> None:
        layer_map = _epsilon_dense_map(
            layer_map,
            stabilizer,
            FastGamma(gamma=gamma, stabilizer=stabilizer, zero_params=zero_params),
            epsilon,
            zero_params,
        )
        first_map = list(first_map or []) + [
            (Convolution, ZBox(low=low, high=high, stabilizer=stabilizer, zero_params=zero_params))
        ]
        super().__init__(layer_map=layer_map, first_map=first_map, canonizers=canonizers)
