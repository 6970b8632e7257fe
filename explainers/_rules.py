"""Conserving z-plus and alpha-beta rules, and the composites of the variants that use them.

zennit's :class:`~zennit.rules.ZPlus` and :class:`~zennit.rules.AlphaBeta` split a neuron's relevance among its
positive contributions (and, for alpha-beta, its negative ones) by their share of the positive (negative) total.
Where that total is empty the share is 0/0, which zennit's stabilizer turns into zero: z-plus drops the relevance of
a neuron with no positive contribution, and alpha2-beta1 hands out ``2 R`` (or ``-R``) at a neuron with no negative
(positive) contribution. Such neurons are frequent on depthwise 3x3 convolutions (nine contributions from a single
channel) and on narrow layers, where they made ShuffleNet v2 lose 95% of its relevance under z-plus and multiply it
tenfold under alpha2-beta1. The rules here fall back, at exactly those neurons, to the part that is not empty, so
every neuron's relevance is distributed in full; everywhere else they equal zennit's rules (without the relevance
zennit's stabilizer absorbs: the stabilizer here only marks empty parts).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.models.convnext import LayerNorm2d
from zennit.composites import LayerMapComposite, layer_map_base
from zennit.core import BasicHook, Hook, Stabilizer
from zennit.rules import ClampMod, Epsilon, NoMod, zero_bias
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
    only when a neuron is empty, and on a convolution only on the output channels (groups) that hold one.
    """

    def __init__(self, stabilizer: StabilizerLike = 1e-6, zero_params: list[str] | None = None) -> None:
        self.arguments = {"stabilizer": stabilizer, "zero_params": zero_params}
        self.stabilizer_fn = stabilizer_fn = Stabilizer.ensure(stabilizer)

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

    def backward(self, module: torch.nn.Module, grad_input: tuple, grad_output: tuple) -> tuple:
        """z-plus; then, only if some neuron had no positive contribution, LRP-0 at those neurons added (on the
        output channels, or groups, that hold one, where the layer is a plain convolution)."""
        input = self.stored_tensors["input"][0]
        if bool((input < 0).any()):
            relevance = super().backward(module, grad_input, grad_output)
        else:
            relevance = self._nonnegative_backward(module, input, grad_input, grad_output[0])
        empty = self.stored_tensors["empty"]
        if not bool(empty.any()):
            return relevance
        if relevance[0] is not None and _restricted_fallback(
            module, self.fallback.param_modifiers[0], self.stabilizer_fn, input, relevance[0], empty, grad_output[0]
        ):
            return relevance
        self.fallback.stored_tensors = self.stored_tensors
        extra = self.fallback.backward(module, grad_input, grad_output)
        return tuple(None if part is None else part + more for part, more in zip(relevance, extra))

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


def _restricted_fallback(
    module: torch.nn.Module,
    param_modifier: Callable,
    stabilizer_fn: Callable[[torch.Tensor], torch.Tensor],
    input: torch.Tensor,
    relevance: torch.Tensor,
    empty: torch.Tensor,
    out_grad: torch.Tensor,
) -> bool:
    """LRP-0 at the empty neurons, added in place to ``relevance``, computed on the output channels (a grouped
    convolution: the groups) that hold an empty neuron only; the other channels contribute 0 to this pass, so the
    result equals the full pass. False, nothing done, where the layer is not a plain zero-padded convolution."""
    conv = _CONVOLUTIONS.get(type(module))
    if conv is None or getattr(module, "padding_mode", "") != "zeros" or empty.dim() < 3:
        return False
    channels = empty.flatten(2).any(2).any(0).nonzero().flatten()
    groups = module.groups
    per_group_out, per_group_in = empty.shape[1] // groups, input.shape[1] // groups
    out_index = in_index = None
    if groups == 1 and len(channels) < empty.shape[1]:
        out_index = channels
    elif len(channels) < empty.shape[1]:
        group_index = torch.unique(channels // per_group_out)
        within_out = torch.arange(per_group_out, device=channels.device)
        within_in = torch.arange(per_group_in, device=channels.device)
        out_index = (group_index[:, None] * per_group_out + within_out).flatten()
        in_index = (group_index[:, None] * per_group_in + within_in).flatten()
        groups = len(group_index)

    def take(tensor: torch.Tensor | None, index: torch.Tensor | None, dim: int = 1) -> torch.Tensor | None:
        return tensor if tensor is None or index is None else tensor.index_select(dim, index)

    sub_input = take(input, in_index).detach().requires_grad_()  # type: ignore[union-attr]
    with param_modifier(module) as modified, torch.autograd.enable_grad():
        weight, bias = modified.weight.detach(), None if modified.bias is None else modified.bias.detach()
        total = conv(
            sub_input,
            take(weight, out_index, 0),
            take(bias, out_index, 0),
            module.stride,
            module.padding,
            module.dilation,
            groups,
        )
    share = take(out_grad, out_index) / _exact(total, _empty(total, stabilizer_fn))  # type: ignore[operator]
    share = share.masked_fill_(~take(empty, out_index), 0.0)  # type: ignore[operator]
    (gradient,) = torch.autograd.grad(total, sub_input, grad_outputs=share)
    contribution = sub_input.detach() * gradient
    if in_index is None:
        relevance.add_(contribution)
    else:
        relevance.index_add_(1, in_index, contribution)
    return True


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
        layer_map = (
            list(layer_map or [])
            + layer_map_base(stabilizer)
            + [
                (Convolution, self.convolution_rule(stabilizer, zero_params)),
                (torch.nn.Linear, Epsilon(epsilon=epsilon, zero_params=zero_params)),
            ]
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
