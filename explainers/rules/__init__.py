"""LRP rules that zennit lacks or that this package computes differently: conserving z-plus and alpha-beta, a gamma
rule with direct gradients, LayerNorm with its standard deviation held constant, the sequence layers' rules, and the
composites of the variants that use them."""

from ._alphabeta import ConservingAlphaBeta
from ._composites import ConservingEpsilonAlpha2Beta1, ConservingEpsilonPlus, FastEpsilonGammaBox
from ._gamma import FastGamma
from ._layernorm import ConservingLayerNorm
from ._sequence import NoRule, PerCall, sequence_layer_map
from ._shares import StabilizerLike
from ._types import LSTM, RNN, Attention
from ._zplus import ConservingZPlus

__all__ = [
    "LSTM",
    "RNN",
    "Attention",
    "ConservingAlphaBeta",
    "ConservingEpsilonAlpha2Beta1",
    "ConservingEpsilonPlus",
    "ConservingLayerNorm",
    "ConservingZPlus",
    "FastEpsilonGammaBox",
    "FastGamma",
    "NoRule",
    "PerCall",
    "StabilizerLike",
    "sequence_layer_map",
]
