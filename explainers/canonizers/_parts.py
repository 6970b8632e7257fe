"""Hookable building blocks the sequence canonizers assemble their explicit forwards from.

What flows backward between hooked modules under a zennit composite is relevance, so every elementwise operation
between them must say how it passes relevance on. The two used here:

- :func:`signal_take_all`: a product ``gate * signal`` with the gate held constant passes all relevance to the
  signal and none to the gate (the "signal-take-all" rule of :cite:p:`arras2017explaining`).
- :func:`relay`: an elementwise activation ``fn(x)`` passes relevance unchanged to ``x`` (the identity rule, zennit's
  ``Pass`` for activations).

Sums go through :class:`StepSum` (zennit's :class:`~zennit.layer.Sum`), whose ``Norm`` rule splits relevance in
proportion to the summands; linear maps through :class:`SharedLinear` / :class:`StepLinear` (epsilon rule).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import nn
from zennit.canonizers import AttributeCanonizer
from zennit.layer import Sum


class _SignalTakeAll(torch.autograd.Function):
    """``gate * signal``; backward passes the incoming relevance to ``signal`` unchanged and none to ``gate``."""

    @staticmethod
    def forward(ctx, gate: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
        return gate * signal

    @staticmethod
    def backward(ctx, relevance: torch.Tensor):
        return None, relevance


class _Relay(torch.autograd.Function):
    """``fn(x)``; backward passes the incoming relevance to ``x`` unchanged (identity rule)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return fn(x)

    @staticmethod
    def backward(ctx, relevance: torch.Tensor):
        return relevance, None


def signal_take_all(gate: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
    """Return ``gate * signal``; all relevance goes to ``signal``, none to ``gate`` :cite:p:`arras2017explaining`."""
    return _SignalTakeAll.apply(gate, signal)


def relay(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Return ``fn(x)`` for an elementwise ``fn``; relevance passes to ``x`` unchanged (identity rule)."""
    return _Relay.apply(x, fn)


def term_sum() -> Sum:
    """A zennit Sum of terms stacked along a new first dimension (each term copied whole, the sum an element-wise
    add: several times faster than stacking along the last dimension, zennit's default)."""
    return Sum(dim=0)


def add(sum_module: Sum, *terms: torch.Tensor) -> torch.Tensor:
    """Add ``terms`` through ``sum_module``, so its ``Norm`` rule splits relevance in proportion to the terms."""
    return sum_module(torch.stack(torch.broadcast_tensors(*terms), dim=sum_module.dim))


class SharedLinear(nn.Linear):
    """A ``nn.Linear`` over existing parameter tensors: nothing is copied, the model's parameters stay untouched.

    ``weight`` (and ``bias``) may be a slice of a packed parameter (e.g. the value rows of a ``MultiheadAttention``'s
    ``in_proj_weight``): it is wrapped as a parameter that shares the slice's memory.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        nn.Module.__init__(self)
        self.out_features, self.in_features = weight.shape
        self.weight = _as_parameter(weight)
        # torch declares nn.Linear.bias a Parameter, though a Linear without a bias holds None there
        self.bias = None if bias is None else _as_parameter(bias)  # type: ignore[assignment]


def _as_parameter(tensor: torch.Tensor) -> nn.Parameter:
    if isinstance(tensor, nn.Parameter):
        return tensor
    return nn.Parameter(tensor.detach(), requires_grad=tensor.requires_grad)


class StepLinear(SharedLinear):
    """A :class:`SharedLinear` called once per time step (a recurrent hidden-to-hidden map).

    zennit stores one input per hooked module, so this type needs a rule that keeps one per call
    (``PerCall`` in :mod:`explainers.rules`).
    """


class StepSum(Sum):
    """A :class:`~zennit.layer.Sum` called once per time step; like :class:`StepLinear`, it needs a per-call rule.
    Its terms are stacked along the first dimension (see :func:`term_sum`)."""

    def __init__(self) -> None:
        super().__init__(dim=0)


class AttentionValues(nn.Module):
    """The attention output ``A @ V`` as a module of a single tensor, for zennit's Epsilon rule.

    Its input is the attention weights ``A`` (N, L, S) and the transposed values ``V^T`` (N, d, S) concatenated along
    dimension -2. ``A`` is detached inside, so ``A @ V`` is a linear map of ``V`` with the weights held constant:
    the epsilon rule on it sends relevance to the values only and none into the softmax (conservative propagation of
    :cite:p:`ali2022xai`, as in AttnLRP :cite:p:`achtibat2024attnlrp`).
    """

    def __init__(self, head_dim: int):
        super().__init__()
        self.head_dim = head_dim

    def forward(self, weights_and_values: torch.Tensor) -> torch.Tensor:
        weights = weights_and_values[..., : -self.head_dim, :].detach()
        values = weights_and_values[..., -self.head_dim :, :].transpose(-1, -2)
        return weights @ values


def attend(module: AttentionValues, weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Return ``weights @ values`` through ``module`` (see :class:`AttentionValues`)."""
    return module(torch.cat([weights.detach(), values.transpose(-1, -2)], dim=-2))


class ForwardCanonizer(AttributeCanonizer):
    """Canonizer that gives each applicable module an explicit forward and hookable helper submodules.

    ``attribute_map(module)`` returns the attributes to set (``forward`` and helper modules) or ``None``. All
    applicable modules are checked before any is changed, so an unsupported option leaves the model untouched.
    ``remove`` deletes the attributes again, which restores the class's own forward and the original child modules.
    """

    def __init__(self, attribute_map: Callable[[nn.Module], dict | None]):
        super().__init__(attribute_map)

    def apply(self, root_module: nn.Module) -> list[AttributeCanonizer]:
        found = [(module, self.attribute_map(module)) for module in root_module.modules()]
        found = [(module, attributes) for module, attributes in found if attributes is not None]
        for module, attributes in found:
            if "forward" in vars(module) or any(hasattr(module, key) for key in attributes if key != "forward"):
                raise ValueError(f"{type(module).__name__} is already canonized (or has a clashing attribute)")
        instances = []
        for module, attributes in found:
            instance = self.copy()
            instance.register(module, attributes)
            instances.append(instance)
        return instances

    def copy(self) -> ForwardCanonizer:
        # every subclass is built without arguments (its attribute map is its own)
        return cast(Callable[[], ForwardCanonizer], self.__class__)()
