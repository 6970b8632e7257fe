"""Abstract module types, in zennit's style, for the families of layers the explainers support."""

from __future__ import annotations

from torch import nn
from zennit.types import SubclassMeta


class LSTM(metaclass=SubclassMeta):
    """Long short-term memory layers."""

    __subclass__ = (nn.LSTM,)


class RNN(metaclass=SubclassMeta):
    """Recurrent layers: Elman RNN, GRU and LSTM."""

    __subclass__ = (nn.RNN, nn.GRU, nn.LSTM)


class Attention(metaclass=SubclassMeta):
    """Multi-head attention, alone or inside a transformer encoder or decoder layer."""

    __subclass__ = (nn.MultiheadAttention,)
