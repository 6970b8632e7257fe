"""Each LRP rule as the backward of its layer: relevance in one pass from the layer's input, its output and the
incoming relevance, with the parameters read from the reference rule (the zennit hook the layer map chose)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import cast

import torch
from torch import nn
from torchvision.models.convnext import LayerNorm2d
from zennit.core import BasicHook, Hook
from zennit.layer import Sum
from zennit.rules import Epsilon, Norm, Pass, ZBox
from zennit.types import Activation, AvgPool, BatchNorm

from ..canonizers import AttentionValues
from ..rules import ConservingAlphaBeta, ConservingLayerNorm, ConservingZPlus, FastGamma, NoRule, PerCall
from ..rules._direct import (
    both_parts,
    channel_dim,
    contributions,
    direct_input_gradient,
    epsilon_floor,
    is_zero_padded_convolution,
    is_zeroed,
    modified_forward,
    modified_total,
    nonnegative_input,
    plain_epsilon,
    signed_input_gradient,
    split_signs,
    stabilized,
    weight_and_bias,
)


class EngineRule:
    """A rule computed as its layer's backward: ``relevance(module, input, stored, relevance)`` returns the input
    relevance; ``stored`` holds the layer's output (``store_output``)."""

    def relevance(self, module: nn.Module, input: torch.Tensor, stored: dict, relevance: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def layer_forward(self, module: nn.Module, forward: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
        """The layer's forward under this rule: its own (``forward``), or one that computes the same faster."""
        return forward


class PassRule(EngineRule):
    """zennit's ``Pass``: relevance passes unchanged (element-wise activations, BatchNorm merged into its layer)."""

    def relevance(self, module, input, stored, relevance):
        return relevance


class SumNormRule(EngineRule):
    """zennit's ``Norm`` on a ``Sum`` of stacked terms: each term's share of the sum, R_i = x_i R / stab(sum x)."""

    def __init__(self, hook: Norm) -> None:
        self.hook = hook

    def relevance(self, module, input, stored, relevance):
        (share,) = _shares(self.hook, relevance, [stored["output"]])
        return input * share.unsqueeze(cast(Sum, module).dim)

    def layer_forward(self, module, forward):
        """The terms added one by one (several times faster than torch.sum over a short stacking dimension)."""
        dim = cast(Sum, module).dim
        return lambda input: functools.reduce(torch.add, input.unbind(dim))


class PoolNormRule(EngineRule):
    """zennit's ``Norm`` on average pooling: R_i = x_i (d pool / d x)^T (R / stab(pool x)), the pool's own gradient
    (a cheap layer: its one small graph is rebuilt in the backward)."""

    def __init__(self, hook: Norm, forward: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.hook, self.forward = hook, forward

    def relevance(self, module, input, stored, relevance):
        with torch.enable_grad():
            leaf = input.detach().requires_grad_()
            output = self.forward(leaf)
            (share,) = _shares(self.hook, relevance, [output.detach()])
            (gradient,) = torch.autograd.grad(output, leaf, share)
        return input * gradient


class EpsilonRule(EngineRule):
    """zennit's ``Epsilon`` on a dense layer or zero-padded convolution: R_i = x_i sum_j w_ij R_j / stab(z_j), z the
    layer's own output (less a bias that ``zero_params`` zeroes)."""

    def __init__(self, hook: Epsilon) -> None:
        self.hook = hook
        self.zero_params = hook.param_modifiers[0].zero_params

    def relevance(self, module, input, stored, relevance):
        weight, bias = weight_and_bias(module, self.zero_params)
        total = modified_total(stored, module, input, bias)
        (share,) = _shares(self.hook, relevance, [total])
        return input * direct_input_gradient(module, input, weight, share)


class DirectHookRule(EngineRule):
    """A rule of this package that already computes its gradients directly (conserving z-plus, fast gamma): its own
    ``_direct_backward``, called from the layer's backward instead of through zennit's hooks."""

    def __init__(self, hook: ConservingZPlus | FastGamma) -> None:
        self.hook = hook

    def relevance(self, module, input, stored, relevance):
        hook = self.hook.copy()  # a fresh instance per call: the rule keeps per-call state in stored_tensors
        hook.stored_tensors = stored
        return hook._direct_backward(module, input, relevance)


class LayerNormRule(EngineRule):
    """:class:`~explainers.rules.ConservingLayerNorm` (the standard deviation held constant, epsilon on the linear
    map that remains), its own formula called from the layer's backward."""

    def __init__(self, hook: ConservingLayerNorm) -> None:
        self.hook = hook

    def relevance(self, module, input, stored, relevance):
        return self.hook.relevance(module, input, relevance)


class AttentionValuesRule(EngineRule):
    """zennit's ``Epsilon`` on :class:`~explainers.canonizers.AttentionValues` (``A @ V``, the weights A held
    constant): R_V = V * (A^T s) with s = R / stab(A V), computed directly from the layer's output; none to A."""

    def __init__(self, hook: Epsilon) -> None:
        self.hook = hook

    def relevance(self, module, input, stored, relevance):
        head_dim = cast(AttentionValues, module).head_dim
        weights, values = input[..., :-head_dim, :], input[..., -head_dim:, :]
        (share,) = _shares(self.hook, relevance, [stored["output"]])
        # d (A V^T^T) / d V^T, as V^T is stored: (s^T A), shaped like V^T (N, d, S)
        gradient = share.transpose(-1, -2) @ weights
        return torch.cat([torch.zeros_like(weights), values * gradient], dim=-2)


class AlphaBetaRule(EngineRule):
    """:class:`~explainers.rules.ConservingAlphaBeta`'s four passes, computed directly: x+ through w+ and x- through
    w- (the positive part), x+ through w- and x- through w+ (the negative part); two of each on an input without
    negative values, where the x- passes are exactly 0, and on a layer with one group x+ and x- side by side as the
    inputs of one pass. With a plain stabilizer the shares take a few element-wise passes (float indicators of the
    parts that are not empty) instead of the rule's masks."""

    def __init__(self, hook: ConservingAlphaBeta) -> None:
        self.hook = hook
        self.zero_params = hook.param_modifiers[0].zero_params

    def relevance(self, module, input, stored, relevance):
        weight, bias = weight_and_bias(module, self.zero_params)
        w_plus, w_minus = weight.clamp(min=0), weight.clamp(max=0)
        nonnegative = nonnegative_input(stored, input)
        stacked = nonnegative and getattr(module, "groups", 1) == 1
        if stacked:  # both parts in one pass: w+ and w- side by side as the outputs of one layer
            both_parts(stored, module, input, w_plus, w_minus, bias)
        signs = None if nonnegative else split_signs(module, input)
        positive = contributions(stored, module, input, weight, bias, w_plus, signs=signs)
        negative = contributions(stored, module, input, weight, bias, w_minus, positive=False, signs=signs)
        share_positive, share_negative = self._shares(relevance, positive, negative)
        if signs is not None:  # x+ w+ and x- w- take the positive share, x+ w- and x- w+ the negative one
            result = signed_input_gradient(module, input, signs, w_plus, w_minus, share_positive)
            return result.add_(signed_input_gradient(module, input, signs, w_minus, w_plus, share_negative))
        if stacked:  # one pass back through w+ and w- side by side: the sum of both gradients
            shares = torch.cat([share_positive, share_negative], dim=channel_dim(module))
            return input * direct_input_gradient(module, input, torch.cat([w_plus, w_minus]), shares)
        gradient_plus = direct_input_gradient(module, input, w_plus, share_positive)
        return input * gradient_plus.add_(direct_input_gradient(module, input, w_minus, share_negative))

    def _shares(
        self, relevance: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """R_j times alpha / z+_j and -beta / z-_j where both parts hold, 1 / z_part where one part is alone, 0 for
        an empty part."""
        epsilon = getattr(self.hook, "epsilon", None)
        if epsilon is None:
            share_positive, _, share_negative, _ = self.hook.gradient_mapper(relevance, [positive, 0.0, negative, 0.0])
            return share_positive, share_negative
        alpha, beta = self.hook.alpha, self.hook.beta
        has_positive = torch.gt(positive, epsilon).to(positive.dtype)
        has_negative = torch.lt(negative, -epsilon).to(negative.dtype)
        # alpha where both parts hold, 1 where the positive part is alone, 0 where it is empty (and -beta, 1, 0)
        weight_positive = torch.addcmul(has_positive, has_positive, has_negative, value=beta)
        weight_negative = torch.addcmul(has_negative, has_positive, has_negative, value=-alpha)
        floor = epsilon_floor(epsilon, positive)
        share_positive = relevance * weight_positive / positive.clamp(min=floor)
        share_negative = relevance * weight_negative / negative.clamp(max=-floor)
        return share_positive, share_negative


class BoxRule(EngineRule):
    """zennit's ``ZBox`` on a dense layer or zero-padded convolution: z = W x - W+ low - W- high (the biases
    b - b+ - b- cancel), R_i = x_i (W^T s)_i - low_i (W+^T s)_i - high_i (W-^T s)_i with s = R / stab(z). Bounds
    alike for every sample (the usual per-channel ones) pass through the layer once, not once per sample; the three
    gradients are one pass through the three weights side by side (where the layer has one group)."""

    def __init__(self, hook: ZBox) -> None:
        self.hook = hook
        self.zero_params = hook.param_modifiers[0].zero_params

    def relevance(self, module, input, stored, relevance):
        low, high = (_per_sample(modifier(input)) for modifier in self.hook.input_modifiers[1:])
        weight, bias = weight_and_bias(module, self.zero_params)
        w_plus, w_minus, b_plus, b_minus = _signed_parts(weight, bias)
        outputs = [
            modified_total(stored, module, input, bias),
            modified_forward(module, low, w_plus, b_plus),
            modified_forward(module, high, w_minus, b_minus),
        ]
        share = self.hook.gradient_mapper(relevance, outputs)[0]
        if getattr(module, "groups", 1) == 1:
            channel = channel_dim(module)
            shape = list(input.shape)
            shape[channel] *= 3
            stacked = input.new_empty(shape)  # only its shape is read
            weights = torch.cat([weight, w_plus, w_minus], dim=1)
            gradients = direct_input_gradient(module, stacked, weights, share).chunk(3, channel)
            gradient, gradient_plus, gradient_minus = gradients
        else:
            gradient, gradient_plus, gradient_minus = (
                direct_input_gradient(module, input, part, share) for part in (weight, w_plus, w_minus)
            )
        result = input * gradient
        result.addcmul_(low, gradient_plus, value=-1.0)
        result.addcmul_(high, gradient_minus, value=-1.0)
        return result


def _per_sample(bound: torch.Tensor) -> torch.Tensor:
    """``bound`` (shaped like the input), its first sample alone where every sample's is the same (it then passes
    through the layer once and broadcasts over the batch)."""
    first = bound[:1]
    return first if torch.equal(bound, first.expand_as(bound)) else bound


def _signed_parts(
    weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(w+, w-, b+, b-): the positive and negative parts of the weight and of the bias (None without a bias)."""
    b_plus = None if bias is None else bias.clamp(min=0)
    b_minus = None if bias is None else bias.clamp(max=0)
    return weight.clamp(min=0), weight.clamp(max=0), b_plus, b_minus


def _shares(hook: BasicHook, relevance: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """The rule's own division of the relevance by its stabilized totals (zennit's ``gradient_mapper``; for
    zennit's ``Epsilon`` and ``Norm`` with a plain stabilizer, the same values in fewer passes)."""
    epsilon = _plain_stabilizer_epsilon(hook)
    if epsilon is not None:
        return [relevance / stabilized(outputs[0], epsilon)]
    shares = hook.gradient_mapper(relevance, outputs)
    return list(shares) if isinstance(shares, (list, tuple)) else [shares]


def _plain_stabilizer_epsilon(hook: BasicHook) -> float | None:
    """The epsilon of zennit's ``Epsilon`` or ``Norm`` whose stabilizer is plain (read from its gradient mapper), else
    None."""
    if type(hook) not in (Epsilon, Norm):
        return None
    mapper = hook.gradient_mapper
    names = getattr(getattr(mapper, "__code__", None), "co_freevars", ())
    if "stabilizer_fn" not in names:
        return None
    return plain_epsilon(mapper.__closure__[names.index("stabilizer_fn")].cell_contents)


def _zero_params(template: Hook) -> str | list[str] | None:
    """The parameters the rule zeroes: its own attribute, else its first parameter modifier's (zennit's rules)."""
    if hasattr(template, "zero_params"):
        return template.zero_params
    modifiers = getattr(template, "param_modifiers", None)
    return getattr(modifiers[0], "zero_params", None) if modifiers else None


def is_direct_layer(module: nn.Module) -> bool:
    """A dense layer whose forward is torch's own (a subclass that keeps it counts) or a zero-padded convolution."""
    if isinstance(module, nn.Linear):
        return type(module).forward is nn.Linear.forward
    return is_zero_padded_convolution(module)


def _activation(module: nn.Module) -> bool:
    """An element-wise activation (zennit's ``Activation`` counts ``nn.MultiheadAttention`` too, which is not)."""
    return isinstance(module, Activation) and not isinstance(module, nn.MultiheadAttention)


def has_rule(template: Hook | None) -> bool:
    """Whether the layer map gives the layer a rule (``NoRule``: its canonized parts carry the rules instead)."""
    return template is not None and not isinstance(template, NoRule)


def engine_rule(template: Hook, module: nn.Module, forward: Callable) -> EngineRule | None:
    """The engine's rule for ``module`` under the reference rule ``template``, or None where the engine has none
    (the module then keeps zennit's hook)."""
    if isinstance(template, PerCall):  # the engine keeps each call's tensors with that call already
        template = template.rule
    kind = type(template)
    if kind is Pass and (_activation(module) or isinstance(module, BatchNorm)):
        return PassRule()
    if kind is Norm and isinstance(module, Sum) and type(module).forward is Sum.forward:
        return SumNormRule(cast(Norm, template))
    if kind is Norm and isinstance(module, AvgPool):
        return PoolNormRule(cast(Norm, template), forward)
    if kind is ConservingLayerNorm and type(module) in (nn.LayerNorm, LayerNorm2d):
        return LayerNormRule(cast(ConservingLayerNorm, template))
    if kind is Epsilon and type(module) is AttentionValues:
        return AttentionValuesRule(cast(Epsilon, template))
    if not is_direct_layer(module) or is_zeroed("weight", _zero_params(template)):
        return None
    if kind is Epsilon:
        return EpsilonRule(cast(Epsilon, template))
    if kind in (ConservingZPlus, FastGamma):
        return DirectHookRule(cast(ConservingZPlus, template))
    if kind is ConservingAlphaBeta:
        return AlphaBetaRule(cast(ConservingAlphaBeta, template))
    if kind is ZBox:
        return BoxRule(cast(ZBox, template))
    return None
