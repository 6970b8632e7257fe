"""Conserving z-plus and alpha-beta rules, a faster gamma rule, and the composites of the variants that use them.

zennit's :class:`~zennit.rules.ZPlus` and :class:`~zennit.rules.AlphaBeta` split a neuron's relevance among its
positive contributions (and, for alpha-beta, its negative ones) by their share of the positive (negative) total.
Where that total is empty the share is 0/0, which zennit's stabilizer turns into zero: z-plus drops the relevance of
a neuron with no positive contribution, and alpha2-beta1 hands out ``2 R`` (or ``-R``) at a neuron with no negative
(positive) contribution. Such neurons are frequent on depthwise 3x3 convolutions (nine contributions from a single
channel) and on narrow layers, where they made ShuffleNet v2 lose 95% of its relevance under z-plus and multiply it
tenfold under alpha2-beta1. The rules here fall back, at exactly those neurons, to the part that is not empty, so
every neuron's relevance is distributed in full; everywhere else they equal zennit's rules (without the relevance
zennit's stabilizer absorbs: the stabilizer here only marks empty parts).

On zero-padded convolutions and dense layers, z-plus and :class:`FastGamma` (zennit's gamma rule) compute their
gradients directly (no autograd graph per modified pass) and read the unmodified pass from the layer's own output, so
an attribution runs fewer passes of each layer than zennit's rules; other layers take the autograd passes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.models.convnext import LayerNorm2d
from zennit.composites import LayerMapComposite, SpecialFirstLayerMapComposite, layer_map_base
from zennit.core import BasicHook, Hook, Stabilizer
from zennit.rules import ClampMod, Epsilon, Gamma, NoMod, ZBox, zero_bias
from zennit.types import Convolution

StabilizerLike = float | Callable[[torch.Tensor], torch.Tensor]


def _positive(input: torch.Tensor) -> torch.Tensor:
    return input.clamp(min=0)


def _negative(input: torch.Tensor) -> torch.Tensor:
    return input.clamp(max=0)


def _empty(part: torch.Tensor, stabilizer_fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Where a part (the positive or negative total of a neuron) is no larger than what the stabilizer adds to it:
    dividing by it would hand the neuron's relevance to the stabilizer, so the part counts as empty."""
    return part.abs() <= (stabilizer_fn(part) - part).abs()


def _exact(part: torch.Tensor, empty: torch.Tensor) -> torch.Tensor:
    """The part itself as the denominator where it is not empty (so the shares sum exactly to the neuron's
    relevance; the stabilizer's only job is to say which parts are empty), 1 where it is (a share of 0 there)."""
    return part.masked_fill(empty, 1.0)


class ConservingZPlus(BasicHook):
    """LRP z-plus :cite:p:`bach2015pixel,montavon2017explaining` that distributes every neuron's relevance.

    R_i = sum_j z+_ij / z+_j R_j with z+_ij = x+_i w+_ij + x-_i w-_ij (alpha=1, beta=0, negative inputs allowed, as
    zennit's :class:`~zennit.rules.ZPlus`). Fallback: at a neuron without any positive contribution (z+_j = 0, or no
    larger than the stabilizer, where zennit's rule loses R_j) the relevance goes to the negative contributions,
    R_i = z_ij / z_j R_j (there every z_ij is negative, so this is the z-minus share of the generalized rule, the
    gamma -> infinity limit of the generalized gamma rule :cite:p:`montavon2019layer,andeol2021learning` at a neuron
    with z_j < 0). The stabilizer only marks the empty parts: elsewhere the shares divide by the exact totals, so they
    sum exactly to R_j, and equal zennit's ZPlus without its stabilizer. Two passes of the layer, as zennit's, one on
    an input without negative values (the negative pass is exactly 0 there); the LRP-0 pass at the empty neurons runs
    only when a neuron is empty, and on a convolution only on the output channels (groups) that hold one. On
    convolutions and dense layers the gradients are computed directly (no autograd graph) and the LRP-0 pass reads
    z_j from the layer's own output.
    """

    def __init__(self, stabilizer: StabilizerLike = 1e-6, zero_params: list[str] | None = None) -> None:
        self.arguments = {"stabilizer": stabilizer, "zero_params": zero_params}
        self.zero_params = zero_params
        self.stabilizer_fn = stabilizer_fn = Stabilizer.ensure(stabilizer)
        self.epsilon = _plain_epsilon(stabilizer_fn)

        def share(out_grad: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
            positive = sum(outputs)
            self.stored_tensors["empty"] = empty = _empty(positive, stabilizer_fn)
            return [(out_grad / _exact(positive, empty)).masked_fill_(empty, 0.0)] * 2

        def fallback_share(out_grad: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
            total = outputs[0]
            share = out_grad / _exact(total, _empty(total, stabilizer_fn))
            return [share.masked_fill_(~self.stored_tensors["empty"], 0.0)]

        super().__init__(
            input_modifiers=[_positive, _negative],
            param_modifiers=[
                ClampMod(min=0.0, zero_params=zero_params),
                ClampMod(max=0.0, zero_params=zero_bias(zero_params)),
            ],
            output_modifiers=[lambda output: output] * 2,
            gradient_mapper=share,
            reducer=lambda inputs, gradients: inputs[0] * gradients[0] + inputs[1] * gradients[1],
        )
        self.fallback = BasicHook(
            input_modifiers=[lambda input: input],
            param_modifiers=[NoMod(zero_params=zero_params)],
            output_modifiers=[lambda output: output],
            gradient_mapper=fallback_share,
            reducer=lambda inputs, gradients: inputs[0] * gradients[0],
        )

    def forward(self, module: torch.nn.Module, input: tuple, output: torch.Tensor) -> None:
        """The input, and the output (z_j of the LRP-0 pass at the empty neurons, unless modified in place later)."""
        super().forward(module, input, output)
        _store_output(self.stored_tensors, output)

    def backward(self, module: torch.nn.Module, grad_input: tuple, grad_output: tuple) -> tuple:
        """z-plus; then, only if some neuron had no positive contribution, LRP-0 at those neurons added. Zero-padded
        convolutions and dense layers take the direct passes (:meth:`_direct_backward`), other layers autograd's."""
        input = self.stored_tensors["input"][0]
        if _direct(module, self.zero_params, input):
            relevance = self._direct_backward(module, input, grad_output[0])
            return tuple(relevance if original.shape == relevance.shape else None for original in grad_input)
        if bool((input < 0).any()):
            relevance = super().backward(module, grad_input, grad_output)
        else:
            relevance = self._nonnegative_backward(module, input, grad_input, grad_output[0])
        empty = self.stored_tensors["empty"]
        if not bool(empty.any()):
            return relevance
        self.fallback.stored_tensors = self.stored_tensors
        extra = self.fallback.backward(module, grad_input, grad_output)
        return tuple(None if part is None else part + more for part, more in zip(relevance, extra))

    def _direct_backward(self, module: torch.nn.Module, input: torch.Tensor, out_grad: torch.Tensor) -> torch.Tensor:
        """z-plus and its fallback on a convolution or dense layer, the gradients computed directly: the same result
        as the autograd passes, without their graphs, and without a forward pass for the fallback's z_j."""
        weight, bias = _weight_bias(module, self.zero_params)
        w_plus, b_plus = weight.clamp(min=0), None if bias is None else bias.clamp(min=0)
        nonnegative = _nonnegative(input)
        if nonnegative:
            positive = _forward(module, input, w_plus, b_plus)
        else:
            x_plus, x_minus, w_minus = input.clamp(min=0), input.clamp(max=0), weight.clamp(max=0)
            positive = _forward(module, x_plus, w_plus, b_plus).add_(_forward(module, x_minus, w_minus))
        empty, held, share = self._positive_share(module, positive, out_grad)
        gradient = _input_gradient(module, input, w_plus, share)
        if nonnegative:
            relevance = input * gradient
        else:
            relevance = x_plus * gradient
            relevance.addcmul_(x_minus, _input_gradient(module, input, w_minus, share))
        if empty is not None and held is not None:
            total = _total(self.stored_tensors, module, input, bias)
            self._lrp0_at(module, input, weight, total, empty, held, out_grad, relevance)
        return relevance

    def _positive_share(
        self, module: torch.nn.Module, positive: torch.Tensor, out_grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """(empty neurons and the channels holding one, or Nones where there is none; R_j / z+_j with 0 at the empty
        neurons). z+_j >= 0 by construction: with the plain stabilizer, empty where z+_j <= epsilon, marked by a float
        indicator (1 at the empty neurons; float arithmetic is several times faster than boolean masks on the CPU);
        with another stabilizer, a boolean mask."""
        if self.epsilon is None:
            empty = _empty(positive, self.stabilizer_fn)
            held = _per_channel(module, empty, torch.Tensor.any)
            share = out_grad / positive.masked_fill_(empty, float("inf"))
            if not bool(held.any()):
                return None, None, share
            return empty, held, share
        if positive.numel() == 0 or not float(positive.amin()) <= self.epsilon:  # none empty (or NaN: passed on)
            return None, None, out_grad / positive
        held = _per_channel(module, positive, torch.Tensor.amin) <= self.epsilon
        kept = torch.sub(positive, self.epsilon).clamp_(min=0).sign_()  # 1 where z+_j > epsilon, else 0
        share = out_grad * kept / positive.clamp_(min=_floor(self.epsilon, positive))
        return kept.neg_().add_(1.0), held, share

    def _lrp0_at(
        self,
        module: torch.nn.Module,
        input: torch.Tensor,
        weight: torch.Tensor,
        total: torch.Tensor,
        empty: torch.Tensor,
        held: torch.Tensor,
        out_grad: torch.Tensor,
        relevance: torch.Tensor,
    ) -> None:
        """LRP-0 at the ``empty`` neurons (a boolean mask, or a float indicator with the plain stabilizer), added in
        place to ``relevance``; on a convolution where few output channels (groups) hold an empty neuron (``held``),
        computed on those only (the others contribute 0 to this pass)."""
        groups, out_index, in_index = _channels(module, held, input)
        if out_index is not None:
            total, empty, out_grad = (t.index_select(1, out_index) for t in (total, empty, out_grad))
            weight = weight.index_select(0, out_index)
        sub_input = input if in_index is None else input.index_select(1, in_index)
        # 0 where the neuron has a positive part and where z_j itself is empty
        if self.epsilon is not None:  # at an empty neuron z_j <= z+_j <= epsilon: z_j is empty unless z_j < -epsilon
            chosen = torch.add(total, self.epsilon).clamp_(max=0).sign_().mul_(empty)  # -1 where chosen, else 0
            share = out_grad * chosen / total.clamp(max=-_floor(self.epsilon, total)).neg_()
        else:
            share = out_grad / total.masked_fill(~empty | _empty(total, self.stabilizer_fn), float("inf"))
        gradient = _input_gradient(module, sub_input, weight, share, groups)
        if in_index is None:
            relevance.addcmul_(sub_input, gradient)
        else:
            relevance.index_add_(1, in_index, sub_input * gradient)

    def _nonnegative_backward(
        self, module: torch.nn.Module, input: torch.Tensor, grad_input: tuple, out_grad: torch.Tensor
    ) -> tuple:
        """z-plus on an input without negative values (after a ReLU): the pass of the negative inputs through the
        negative weights contributes exactly 0, so only the positive pass runs (the same result, one pass less)."""
        input = input.clone().requires_grad_()
        with self.param_modifiers[0](module) as modified, torch.autograd.enable_grad():
            output = modified.forward(input)
        (share, _) = self.gradient_mapper(out_grad, [output])
        (gradient,) = torch.autograd.grad(output, input, grad_outputs=share, create_graph=out_grad.requires_grad)
        relevance = input * gradient
        return tuple(relevance if original.shape == relevance.shape else None for original in grad_input)

    def copy(self) -> ConservingZPlus:
        """A fresh instance per module (the fallback reads the empty neurons this instance recorded)."""
        return type(self)(**self.arguments)


_CONVOLUTIONS = {torch.nn.Conv1d: F.conv1d, torch.nn.Conv2d: F.conv2d, torch.nn.Conv3d: F.conv3d}


def _plain_epsilon(stabilizer_fn: Callable[[torch.Tensor], torch.Tensor]) -> float | None:
    """The epsilon of a plain zennit Stabilizer (adds epsilon * sign, no clipping or scaling), where ``|part| <=
    epsilon`` says a part is empty; None for any other stabilizer (the general test then)."""
    if type(stabilizer_fn) is Stabilizer and not stabilizer_fn.clip and not stabilizer_fn.norm_scale:
        return float(stabilizer_fn.epsilon)
    return None


def _floor(epsilon: float, like: torch.Tensor) -> float:
    """The smallest denominator at a neuron whose share is 0 anyway: epsilon, or the smallest normal number of the
    dtype where epsilon is 0 (a non-zero denominator keeps 0 * R / z free of NaN)."""
    return max(epsilon, torch.finfo(like.dtype).tiny)


def _per_channel(module: torch.nn.Module, tensor: torch.Tensor, reduce: Callable) -> torch.Tensor:
    """``tensor`` (a layer's output) reduced over every dimension but the channels (a dense layer's: the last)."""
    channel = tensor.dim() - 1 if type(module) is torch.nn.Linear else 1
    dims = tuple(dim for dim in range(tensor.dim()) if dim != channel)
    return reduce(tensor, dims) if dims else tensor


def _zeroed(name: str, zero_params: str | list[str] | None) -> bool:
    """Whether a ParamMod with ``zero_params`` sets the parameter ``name`` to zero."""
    if not zero_params:
        return False
    return name == zero_params if isinstance(zero_params, str) else name in zero_params


def _direct(module: torch.nn.Module, zero_params: str | list[str] | None, input: torch.Tensor) -> bool:
    """Whether the rule's gradients on ``module`` are computed directly: a dense layer or a zero-padded convolution
    on a batched input (exactly those types: a subclass may change the forward) whose weight is kept."""
    if _zeroed("weight", zero_params):
        return False
    if type(module) is torch.nn.Linear:
        return True
    return (
        type(module) in _CONVOLUTIONS
        and getattr(module, "padding_mode", "") == "zeros"
        and isinstance(getattr(module, "padding", None), tuple)
        and input.dim() == len(module.kernel_size) + 2  # type: ignore[arg-type]
    )


def _weight_bias(
    module: torch.nn.Module, zero_params: str | list[str] | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The layer's weight and bias, detached; no bias where there is none or ``zero_params`` zeroes it."""
    bias = module.bias
    keep_bias = bias is not None and not _zeroed("bias", zero_params)
    return module.weight.detach(), bias.detach() if keep_bias else None


def _nonnegative(input: torch.Tensor) -> bool:
    """Whether ``input`` has no negative value (one reduction)."""
    return input.numel() == 0 or bool(input.amin() >= 0)


def _forward(
    module: torch.nn.Module, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """The layer (a convolution or a dense layer) with other weights."""
    if type(module) is torch.nn.Linear:
        return F.linear(input, weight, bias)
    conv = _CONVOLUTIONS[type(module)]
    return conv(input, weight, bias, module.stride, module.padding, module.dilation, module.groups)


def _input_gradient(
    module: torch.nn.Module,
    input: torch.Tensor,
    weight: torch.Tensor,
    grad_output: torch.Tensor,
    groups: int | None = None,
) -> torch.Tensor:
    """The gradient of ``sum(grad_output * layer(input; weight))`` with respect to the input, without a graph (the
    bias plays no part); ``groups`` overrides the convolution's groups (a subset of them)."""
    if type(module) is torch.nn.Linear:
        return grad_output @ weight
    dims = input.dim() - 2
    return torch.ops.aten.convolution_backward(
        grad_output,
        input,
        weight,
        None,
        module.stride,
        module.padding,
        module.dilation,
        False,
        [0] * dims,
        module.groups if groups is None else groups,
        [True, False, False],
    )[0]


def _store_output(stored_tensors: dict, output: torch.Tensor) -> None:
    """Keep the layer's output (detached) and its version, to tell whether an in-place operation changed it since."""
    stored_tensors["output"] = output.detach()
    stored_tensors["output_version"] = output._version


def _output(stored_tensors: dict, module: torch.nn.Module, input: torch.Tensor) -> torch.Tensor:
    """The layer's output of the forward pass, computed again where an in-place operation (a ReLU) changed it."""
    output = stored_tensors["output"]
    if output._version == stored_tensors["output_version"]:
        return output
    return _forward(module, input, *_weight_bias(module, None))


def _total(
    stored_tensors: dict, module: torch.nn.Module, input: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """z_j = (W x + b)_j with ``bias`` (None where zero_params zeroes it): the layer's output, less its bias where
    that is zeroed (the canonizers merged BatchNorm into the layer before the forward pass, so both agree)."""
    output = _output(stored_tensors, module, input)
    if bias is None and module.bias is not None:
        output = output - _channel_view(module, module.bias.detach(), output)
    return output


def _channel_view(module: torch.nn.Module, vector: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-channel vector (a bias) shaped to broadcast over the layer's output ``like`` (a convolution's channels
    are dim 1, a dense layer's the last dim)."""
    if type(module) is torch.nn.Linear:
        return vector
    return vector.view(-1, *([1] * (like.dim() - 2)))


def _channels(
    module: torch.nn.Module, held: torch.Tensor, input: torch.Tensor
) -> tuple[int | None, torch.Tensor | None, torch.Tensor | None]:
    """(groups, output channels, input channels) of the convolution restricted to the output channels (a grouped
    convolution: the groups) that hold an empty neuron (``held``); Nones on a dense layer, and where more than half
    hold one (the copies of the restriction would cost more than the channels it spares)."""
    if type(module) is torch.nn.Linear or len(held) == 1:
        return None, None, None
    in_channels = input.shape[1]
    channels = held.nonzero().flatten()
    groups = module.groups
    if groups == 1:
        return (None, channels, None) if 2 * len(channels) <= len(held) else (None, None, None)
    per_group_out, per_group_in = len(held) // groups, in_channels // groups
    group_index = torch.unique(channels // per_group_out)
    if 2 * len(group_index) > groups:
        return None, None, None
    within_out = torch.arange(per_group_out, device=channels.device)
    within_in = torch.arange(per_group_in, device=channels.device)
    out_index = (group_index[:, None] * per_group_out + within_out).flatten()
    in_index = (group_index[:, None] * per_group_in + within_in).flatten()
    return len(group_index), out_index, in_index


class FastGamma(Gamma):
    """zennit's generalized gamma rule :class:`~zennit.rules.Gamma` :cite:p:`montavon2019layer,andeol2021learning`,
    with fewer passes on convolutions and dense layers; same signature, same results (up to float rounding).

    There the unmodified pass is the layer's own output z = W x + b, and with p = x+ w+ + x- w- (one pass on an input
    without negative values, where the x- passes vanish) the two modified totals are z + gamma p (positive weights
    boosted) and z + gamma (z - p) (negative ones), biases as zennit's; the gradients are computed directly, without
    an autograd graph. Other layers: zennit's five passes.
    """

    def __init__(
        self, gamma: float = 0.25, stabilizer: StabilizerLike = 1e-6, zero_params: list[str] | None = None
    ) -> None:
        super().__init__(gamma=gamma, stabilizer=stabilizer, zero_params=zero_params)
        self.arguments = {"gamma": gamma, "stabilizer": stabilizer, "zero_params": zero_params}
        self.gamma = gamma
        self.zero_params = zero_params
        self.stabilizer_fn = Stabilizer.ensure(stabilizer)
        self.epsilon = _plain_epsilon(self.stabilizer_fn)

    def forward(self, module: torch.nn.Module, input: tuple, output: torch.Tensor) -> None:
        """The input, and the output (the unmodified pass, unless modified in place later)."""
        super().forward(module, input, output)
        _store_output(self.stored_tensors, output)

    def backward(self, module: torch.nn.Module, grad_input: tuple, grad_output: tuple) -> tuple:
        """The gamma rule: directly on a convolution or dense layer, zennit's passes elsewhere."""
        input = self.stored_tensors["input"][0]
        if not _direct(module, self.zero_params, input):
            return super().backward(module, grad_input, grad_output)
        relevance = self._direct_backward(module, input, grad_output[0])
        return tuple(relevance if original.shape == relevance.shape else None for original in grad_input)

    def _direct_backward(self, module: torch.nn.Module, input: torch.Tensor, out_grad: torch.Tensor) -> torch.Tensor:
        gamma = self.gamma
        weight, bias = module.weight.detach(), None if module.bias is None else module.bias.detach()
        output = _output(self.stored_tensors, module, input)  # zennit's unmodified pass keeps the bias
        w_plus = weight.clamp(min=0)
        nonnegative = _nonnegative(input)
        if nonnegative:
            part = _forward(module, input, w_plus)
        else:
            x_minus = input.clamp(max=0)
            part = _forward(module, input.clamp(min=0), w_plus).add_(_forward(module, x_minus, weight.clamp(max=0)))
        # z + gamma p and z + gamma (z - p), the biases b + gamma b+ and b + gamma b- (or none, zeroed)
        base, zeroed_bias = output, bias is not None and _zeroed("bias", self.zero_params)
        if zeroed_bias:
            base = output - _channel_view(module, bias, output)
        elif bias is not None:
            part.add_(_channel_view(module, bias.clamp(min=0), output))
        positive = torch.add(base, part, alpha=gamma)
        negative = torch.add(base, part, alpha=-gamma).add_(base, alpha=gamma)
        if self.epsilon is not None and not zeroed_bias:
            # the plain stabilizer adds epsilon * sign: positive >= z > 0 where z > 0, negative <= z < 0 where z < 0;
            # float indicators of the signs of z (faster than boolean masks), denominators kept away from 0 elsewhere
            floor = _floor(self.epsilon, output)
            up, down = output.clamp(min=0).sign_(), output.clamp(max=0).sign_()  # 1 where z > 0; -1 where z < 0
            share_positive = out_grad * up / positive.clamp_(min=0).add_(floor)
            share_negative = out_grad * down / negative.clamp_(max=0).sub_(floor).neg_()
        else:
            share_positive = (output > 0) * out_grad / self.stabilizer_fn(positive)
            share_negative = (output < 0) * out_grad / self.stabilizer_fn(negative)
        w_positive, w_negative = torch.add(weight, w_plus, alpha=gamma), torch.add(weight, w_plus, alpha=-gamma)
        w_negative.add_(weight, alpha=gamma)  # w + gamma w- = w + gamma (w - w+)
        gradient = _input_gradient(module, input, w_positive, share_positive)
        gradient += _input_gradient(module, input, w_negative, share_negative)
        if nonnegative:
            return input * gradient
        # x+ (g(w_pos, s_pos) + g(w_neg, s_neg)) + x- (g(w_neg, s_pos) + g(w_pos, s_neg)); the second sum is
        # (2 + gamma) g(w, s_pos + s_neg) less the first, as w_pos + w_neg = (2 + gamma) w
        total = _input_gradient(module, input, weight, share_positive + share_negative)
        return input.abs() * gradient + (2.0 + gamma) * x_minus * total

    def copy(self) -> FastGamma:
        """A fresh instance per module (zennit's copy would drop this rule's parameters)."""
        return type(self)(**self.arguments)


class ConservingAlphaBeta(BasicHook):
    """LRP alpha-beta :cite:p:`bach2015pixel` that distributes every neuron's relevance.

    R_i = sum_j (alpha z+_ij / z+_j - beta z-_ij / z-_j) R_j, z+ and z- the positive and negative contributions (as
    zennit's :class:`~zennit.rules.AlphaBeta`; alpha - beta = 1). Fallback: where one part is empty (or no larger than
    the stabilizer) the other gets the whole relevance, R_i = z+_ij / z+_j R_j where z-_j = 0 (zennit's rule hands
    out alpha R_j there) and R_i = z-_ij / z-_j R_j where z+_j = 0 (zennit's: -beta R_j), as the generalized rules
    treat a one-signed neuron :cite:p:`andeol2021learning`. The stabilizer only marks the empty parts: elsewhere the
    shares divide by the exact totals and equal zennit's AlphaBeta without its stabilizer; same four passes.
    """

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 1.0,
        stabilizer: StabilizerLike = 1e-6,
        zero_params: list[str] | None = None,
    ) -> None:
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha and beta must be non-negative, got alpha={alpha}, beta={beta}")
        if alpha - beta != 1.0:
            raise ValueError(f"alpha - beta must equal 1, got alpha={alpha}, beta={beta}")
        stabilizer_fn = Stabilizer.ensure(stabilizer)

        def gradient_mapper(out_grad: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
            positive, negative = sum(outputs[:2]), sum(outputs[2:])
            no_positive, no_negative = _empty(positive, stabilizer_fn), _empty(negative, stabilizer_fn)
            ratio_positive = out_grad / _exact(positive, no_positive)
            ratio_negative = out_grad / _exact(negative, no_negative)
            # alpha and -beta where both parts exist, the whole relevance (1) to a part that is alone, 0 to an empty one
            share_positive = torch.where(no_negative, ratio_positive, alpha * ratio_positive)
            share_negative = torch.where(no_positive, ratio_negative, -beta * ratio_negative)
            share_positive = share_positive.masked_fill_(no_positive, 0.0)
            share_negative = share_negative.masked_fill_(no_negative, 0.0)
            return [share_positive, share_positive, share_negative, share_negative]

        super().__init__(
            input_modifiers=[_positive, _negative, _positive, _negative],
            param_modifiers=[
                ClampMod(min=0.0, zero_params=zero_params),
                ClampMod(max=0.0, zero_params=zero_bias(zero_params)),
                ClampMod(max=0.0, zero_params=zero_params),
                ClampMod(min=0.0, zero_params=zero_bias(zero_params)),
            ],
            output_modifiers=[lambda output: output] * 4,
            gradient_mapper=gradient_mapper,
            reducer=lambda inputs, gradients: (
                (inputs[0] * gradients[0] + inputs[1] * gradients[1])
                + (inputs[2] * gradients[2] + inputs[3] * gradients[3])
            ),
        )


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


class ConservingLayerNorm(Hook):
    """LayerNorm (and torchvision's ``LayerNorm2d``) as the linear map it is once its standard deviation is held
    constant, with the epsilon rule on that map :cite:p:`ali2022xai,achtibat2024attnlrp`.

    y = gamma (x - mean(x)) / std + beta with ``std`` a constant is linear in x: y = W x + beta, W = diag(gamma) (I -
    11^T / N) / std. R_x = x * W^T (R_y / (y + stabilizer)) sums to the relevance of y (with beta = 0). Unlike the
    identity rule (R_x = R_y), relevance stays proportional to the contributions x_j w_ij: the identity rule puts a
    normalised output's relevance on an input that the mean subtraction may have moved to almost zero, and the layer
    below then divides by that input (post-norm blocks, Swin v2, amplified relevance to 1e9).
    """

    def __init__(self, stabilizer: StabilizerLike = 1e-6) -> None:
        super().__init__()
        self.stabilizer = stabilizer
        self.stabilizer_fn = Stabilizer.ensure(stabilizer)

    def forward(self, module: torch.nn.Module, input: tuple, output: torch.Tensor) -> None:
        self.stored_tensors["input"] = input[0].detach()

    def backward(self, module: torch.nn.Module, grad_input: tuple, grad_output: tuple) -> tuple:
        x = self.stored_tensors["input"]
        channels_first = isinstance(module, LayerNorm2d)
        if channels_first:  # LayerNorm2d normalises dim 1: move it last, as its own forward does
            x = x.movedim(1, -1)
        dims = tuple(range(-len(module.normalized_shape), 0))
        centred = x - x.mean(dims, keepdim=True)
        std = (centred.pow(2).mean(dims, keepdim=True) + module.eps).sqrt()
        weight = module.weight if module.weight is not None else torch.ones((), dtype=x.dtype, device=x.device)
        output = weight * centred / std
        if module.bias is not None:
            output = output + module.bias
        relevance = grad_output[0].movedim(1, -1) if channels_first else grad_output[0]
        share = weight * relevance / self.stabilizer_fn(output)
        result = x * (share - share.mean(dims, keepdim=True)) / std
        return ((result.movedim(-1, 1) if channels_first else result).to(grad_output[0].dtype),)

    def copy(self) -> ConservingLayerNorm:
        return type(self)(self.stabilizer)
