"""The gamma rule computed with direct gradients where a layer allows it."""

from __future__ import annotations

from typing import TypedDict, cast

import torch
from zennit.core import Stabilizer
from zennit.rules import Gamma

from ._direct import (
    channel_view,
    contributions,
    direct_input_gradient,
    epsilon_floor,
    is_zeroed,
    nonnegative_input,
    plain_epsilon,
    store_output,
    stored_output,
    takes_direct_path,
    weight_and_bias,
)
from ._shares import StabilizerLike


class _GammaArguments(TypedDict):
    """The arguments a :class:`FastGamma` was built with (its copies are built with them again)."""

    gamma: float
    stabilizer: StabilizerLike
    zero_params: list[str] | None


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
        self.arguments: _GammaArguments = {"gamma": gamma, "stabilizer": stabilizer, "zero_params": zero_params}
        self.gamma = gamma
        self.zero_params = zero_params
        self.stabilizer_fn = Stabilizer.ensure(stabilizer)
        self.epsilon = plain_epsilon(self.stabilizer_fn)

    def forward(self, module: torch.nn.Module, input: tuple, output: torch.Tensor) -> None:
        """The input, and the output (the unmodified pass, unless modified in place later)."""
        super().forward(module, input, output)
        store_output(self.stored_tensors, output)

    def backward(self, module: torch.nn.Module, grad_input: tuple, grad_output: tuple) -> tuple:
        """The gamma rule: directly on a convolution or dense layer, zennit's passes elsewhere."""
        input = self.stored_tensors["input"][0]
        if not takes_direct_path(module, self.zero_params, input):
            return super().backward(module, grad_input, grad_output)
        relevance = self._direct_backward(module, input, grad_output[0])
        self.stored_tensors.pop("parts", None)  # one backward per forward on the hook path: free them now
        return tuple(relevance if original.shape == relevance.shape else None for original in grad_input)

    def _direct_backward(self, module: torch.nn.Module, input: torch.Tensor, out_grad: torch.Tensor) -> torch.Tensor:
        gamma = self.gamma
        weight, bias = weight_and_bias(module, None)
        output = stored_output(self.stored_tensors, module, input)  # zennit's unmodified pass keeps the bias
        w_plus = weight.clamp(min=0)
        # p = x+ w+ + x- w- (+ b+, where the bias is kept, added by the convolution itself)
        zeroed_bias = bias is not None and is_zeroed("bias", self.zero_params)
        part = contributions(self.stored_tensors, module, input, weight, None if zeroed_bias else bias, w_plus)
        nonnegative = nonnegative_input(self.stored_tensors, input)
        if nonnegative and self.epsilon is not None and not zeroed_bias:
            return self._nonnegative_backward(module, input, weight, w_plus, output, part, out_grad)
        # z + gamma p and z + gamma (z - p) = lerp(p, z, 1 + gamma), the biases b + gamma b+ and b + gamma b- (or none)
        base = output - channel_view(module, bias, output) if zeroed_bias and bias is not None else output
        positive = torch.add(base, part, alpha=gamma)
        negative = torch.lerp(part, base, 1.0 + gamma)
        if self.epsilon is not None and not zeroed_bias:
            # the plain stabilizer adds epsilon * sign: positive >= z > 0 where z > 0, negative <= z < 0 where z < 0;
            # float indicators of the signs of z (faster than boolean masks), denominators kept away from 0 elsewhere;
            # the negative share is computed with its sign flipped (-R / (negative - epsilon)), and subtracted
            floor = epsilon_floor(self.epsilon, output)
            sign = output.sign()
            share_positive = out_grad * sign.clamp(min=0) / positive.clamp_(min=0).add_(floor)
            share_negative = out_grad.mul(sign.clamp_(max=0)).div_(negative.clamp_(max=0).sub_(floor))
            flip = -1.0
        else:
            share_positive = (output > 0) * out_grad / self.stabilizer_fn(positive)
            share_negative = (output < 0) * out_grad / self.stabilizer_fn(negative)
            flip = 1.0
        w_positive, w_negative = torch.add(weight, w_plus, alpha=gamma), torch.lerp(w_plus, weight, 1.0 + gamma)
        gradient = direct_input_gradient(module, input, w_positive, share_positive)
        gradient.add_(direct_input_gradient(module, input, w_negative, share_negative), alpha=flip)
        if nonnegative:
            return gradient.mul_(input)
        # x+ (g(w_pos, s_pos) + g(w_neg, s_neg)) + x- (g(w_neg, s_pos) + g(w_pos, s_neg)); the second sum is
        # (2 + gamma) g(w, s_pos + s_neg) less the first, as w_pos + w_neg = (2 + gamma) w
        shares = torch.add(share_positive, share_negative, alpha=flip)
        total = direct_input_gradient(module, input, weight, shares)
        return input.abs() * gradient + (2.0 + gamma) * input.clamp(max=0) * total

    def _nonnegative_backward(
        self,
        module: torch.nn.Module,
        input: torch.Tensor,
        weight: torch.Tensor,
        w_plus: torch.Tensor,
        output: torch.Tensor,
        part: torch.Tensor,
        out_grad: torch.Tensor,
    ) -> torch.Tensor:
        """The common case (an input without negative values, the plain stabilizer, the bias kept) in fewer passes:
        one modified total, z + gamma p where z > 0 and z + gamma (z - p) elsewhere, which has the sign of z where
        z != 0; and no pass through the negative-boosted weights where no relevance reaches a neuron with z < 0 (a
        layer whose output only a ReLU reads: there the next layer's input, and so its relevance, is 0)."""
        gamma = self.gamma
        floor = epsilon_floor(cast(float, self.epsilon), output)
        # float indicators (several times faster than boolean masks on the CPU): -1 where z < 0, 1 where z > 0
        negative = output.sign()
        positive = negative.clamp(min=0)
        negative.clamp_(max=0)
        # z + gamma p, and z + gamma (z - p) where z < 0; then + epsilon where z >= 0 and - epsilon where z < 0 (the
        # plain stabilizer; at z = 0 the share is 0 below, the denominator only kept away from 0)
        total = torch.add(output, part, alpha=gamma)
        total.addcmul_(negative, torch.add(output, part, alpha=-2.0), value=-gamma)
        share = out_grad / total.add_(negative, alpha=2.0 * floor).add_(floor)
        share_negative = share * negative  # the negative share with its sign flipped, subtracted below
        gradient = direct_input_gradient(module, input, torch.add(weight, w_plus, alpha=gamma), share.mul_(positive))
        if not (float(share_negative.amin()) == 0.0 and float(share_negative.amax()) == 0.0):  # a NaN runs the pass
            w_negative = torch.lerp(w_plus, weight, 1.0 + gamma)
            gradient.sub_(direct_input_gradient(module, input, w_negative, share_negative))
        return gradient.mul_(input)

    def copy(self) -> FastGamma:
        """A fresh instance per module (zennit's copy would drop this rule's parameters)."""
        return type(self)(**self.arguments)
