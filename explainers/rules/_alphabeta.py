"""Conserving alpha-beta: zennit's rule with a fallback at neurons whose positive or negative part is empty."""

from __future__ import annotations

import torch
from zennit.core import BasicHook, Stabilizer
from zennit.rules import ClampMod, zero_bias

from ._direct import plain_epsilon
from ._shares import StabilizerLike, empty_part, exact_part, negative_part, positive_part, sum_of


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
        self.alpha, self.beta = alpha, beta
        #: epsilon of a plain stabilizer (``|part| <= epsilon`` says a part is empty), else None
        self.epsilon = plain_epsilon(stabilizer_fn)

        def gradient_mapper(out_grad: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
            positive, negative = sum_of(outputs[:2]), sum_of(outputs[2:])
            no_positive, no_negative = empty_part(positive, stabilizer_fn), empty_part(negative, stabilizer_fn)
            ratio_positive = out_grad / exact_part(positive, no_positive)
            ratio_negative = out_grad / exact_part(negative, no_negative)
            # alpha and -beta where both parts exist, the whole relevance (1) to a part that is alone, 0 to an empty one
            share_positive = torch.where(no_negative, ratio_positive, alpha * ratio_positive)
            share_negative = torch.where(no_positive, ratio_negative, -beta * ratio_negative)
            share_positive = share_positive.masked_fill_(no_positive, 0.0)
            share_negative = share_negative.masked_fill_(no_negative, 0.0)
            return [share_positive, share_positive, share_negative, share_negative]

        super().__init__(
            input_modifiers=[positive_part, negative_part, positive_part, negative_part],
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
