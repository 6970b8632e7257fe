"""Conserving z-plus: zennit's rule that distributes every neuron's relevance."""

from __future__ import annotations

from typing import TypedDict

import torch
from zennit.core import BasicHook, Stabilizer
from zennit.rules import ClampMod, NoMod, zero_bias

from ._direct import (
    contributions,
    direct_input_gradient,
    epsilon_floor,
    held_channels,
    modified_total,
    nonnegative_input,
    per_channel,
    plain_epsilon,
    signed_input_gradient,
    split_signs,
    store_output,
    takes_direct_path,
    weight_and_bias,
)
from ._shares import StabilizerLike, empty_part, exact_part, negative_part, positive_part, sum_of


class _ZPlusArguments(TypedDict):
    """The arguments a :class:`ConservingZPlus` was built with (its copies are built with them again)."""

    stabilizer: StabilizerLike
    zero_params: list[str] | None


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
        self.arguments: _ZPlusArguments = {"stabilizer": stabilizer, "zero_params": zero_params}
        self.zero_params = zero_params
        self.stabilizer_fn = stabilizer_fn = Stabilizer.ensure(stabilizer)
        self.epsilon = plain_epsilon(stabilizer_fn)

        def share(out_grad: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
            positive = sum_of(outputs)
            self.stored_tensors["empty"] = empty = empty_part(positive, stabilizer_fn)
            return [(out_grad / exact_part(positive, empty)).masked_fill_(empty, 0.0)] * 2

        def fallback_share(out_grad: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
            total = outputs[0]
            share = out_grad / exact_part(total, empty_part(total, stabilizer_fn))
            return [share.masked_fill_(~self.stored_tensors["empty"], 0.0)]

        super().__init__(
            input_modifiers=[positive_part, negative_part],
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
        store_output(self.stored_tensors, output)

    def backward(self, module: torch.nn.Module, grad_input: tuple, grad_output: tuple) -> tuple:
        """z-plus; then, only if some neuron had no positive contribution, LRP-0 at those neurons added. Zero-padded
        convolutions and dense layers take the direct passes (:meth:`_direct_backward`), other layers autograd's."""
        input = self.stored_tensors["input"][0]
        if takes_direct_path(module, self.zero_params, input):
            direct = self._direct_backward(module, input, grad_output[0])
            self.stored_tensors.pop("parts", None)  # one backward per forward on the hook path: free them now
            return tuple(direct if original.shape == direct.shape else None for original in grad_input)
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
        weight, bias = weight_and_bias(module, self.zero_params)
        w_plus = weight.clamp(min=0)
        nonnegative = nonnegative_input(self.stored_tensors, input)
        signs = None if nonnegative else split_signs(module, input)
        positive = contributions(self.stored_tensors, module, input, weight, bias, w_plus, signs=signs)
        empty, held, share = self._positive_share(module, positive, out_grad)
        if signs is None:
            relevance = input * direct_input_gradient(module, input, w_plus, share)
        else:
            relevance = signed_input_gradient(module, input, signs, w_plus, weight.clamp(max=0), share)
        if empty is not None and held is not None:
            total = modified_total(self.stored_tensors, module, input, bias)
            self._lrp0_at(module, input, weight, total, empty, held, out_grad, relevance)
        return relevance

    def _positive_share(
        self, module: torch.nn.Module, positive: torch.Tensor, out_grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """(empty neurons and the channels holding one, or Nones where there is none; R_j / z+_j with 0 at the empty
        neurons). z+_j >= 0 by construction: with the plain stabilizer, empty where z+_j <= epsilon, marked by a float
        indicator (1 at the empty neurons; float arithmetic is several times faster than boolean masks on the CPU);
        with another stabilizer, a boolean mask. ``positive`` is left as it is (configurations share it)."""
        if self.epsilon is None:
            empty = empty_part(positive, self.stabilizer_fn)
            held = per_channel(module, empty, torch.Tensor.any)
            share = out_grad / positive.masked_fill(empty, float("inf"))
            if not bool(held.any()):
                return None, None, share
            return empty, held, share
        if positive.numel() == 0 or not float(positive.amin()) <= self.epsilon:  # none empty (or NaN: passed on)
            return None, None, out_grad / positive
        held = per_channel(module, positive, torch.Tensor.amin) <= self.epsilon
        kept = torch.sub(positive, self.epsilon).clamp_(min=0).sign_()  # 1 where z+_j > epsilon, else 0
        share = out_grad * kept / positive.clamp(min=epsilon_floor(self.epsilon, positive))
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
        groups, out_index, in_index = held_channels(module, held, input)
        if out_index is not None:
            total, empty, out_grad = (t.index_select(1, out_index) for t in (total, empty, out_grad))
            weight = weight.index_select(0, out_index)
        sub_input = input if in_index is None else input.index_select(1, in_index)
        # 0 where the neuron has a positive part and where z_j itself is empty
        if self.epsilon is not None:  # at an empty neuron z_j <= z+_j <= epsilon: z_j is empty unless z_j < -epsilon
            chosen = torch.add(total, self.epsilon).clamp_(max=0).sign_().mul_(empty)  # -1 where chosen, else 0
            share = out_grad * chosen / total.clamp(max=-epsilon_floor(self.epsilon, total)).neg_()
        else:
            share = out_grad / total.masked_fill(~empty | empty_part(total, self.stabilizer_fn), float("inf"))
        gradient = direct_input_gradient(module, sub_input, weight, share, groups)
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
