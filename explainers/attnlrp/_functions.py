"""AttnLRP's rules in the gradient-times-input form :cite:p:`achtibat2024attnlrp`: each rule is the backward of its
operation, and the relevance of any tensor x is x times its gradient. Every linear operation without a rule of its
own (views, sums, scalings, residual additions, added constants) then propagates relevance by LRP-0, and one backward
pass gives the explanation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd import Function

from ..canonizers._parts import SharedLinear
from ..rules import FastGamma
from ..rules._direct import stabilized, store_output

#: the stabilizer of the identity rule's ratio f(x) / x (its only role: no division by an exact 0)
RATIO_EPSILON = 1e-12


class EpsilonShare(Function):
    """``z`` unchanged; its gradient times z / (z + epsilon sign z): the epsilon rule on the linear layer that
    computed z (the relevance z * g divided by the stabilized total)."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, epsilon: float) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.epsilon = epsilon
        return z.view_as(z)

    @staticmethod
    def backward(ctx: Any, gradient: torch.Tensor) -> tuple:
        (z,) = ctx.saved_tensors
        return gradient * z / stabilized(z, ctx.epsilon), None


class GammaRule(Function):
    """``linear(x, weight, bias)``; its backward the generalized gamma rule :cite:p:`montavon2019layer` of the
    engine (:class:`~explainers.rules.FastGamma`'s direct passes, the stabilizer ``epsilon``), its input relevance
    returned as a gradient (divided by the stabilized input, which multiplies it again upstream)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, gamma: float, epsilon: float
    ) -> torch.Tensor:
        z = F.linear(x, weight, bias)
        ctx.save_for_backward(x, z)
        ctx.layer, ctx.rule = SharedLinear(weight, bias), FastGamma(gamma=gamma, stabilizer=epsilon)
        return z

    @staticmethod
    def backward(ctx: Any, gradient: torch.Tensor) -> tuple:
        x, z = ctx.saved_tensors
        rule = ctx.rule
        store_output(rule.stored_tensors, z)
        relevance = rule._direct_backward(ctx.layer, x, z * gradient)
        return relevance / stabilized(x, RATIO_EPSILON), None, None, None, None


class Divide(Function):
    """``x`` unchanged; its gradient divided by ``factor``: the uniform rule on a product of two activations (each
    factor's gradient already carries the product's whole relevance; halved, the two shares sum to it)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, gradient: torch.Tensor) -> tuple:
        return gradient / ctx.factor, None


class IdentityRule(Function):
    """``y = f(x)`` (given, computed without a graph); the gradient times y / x: the identity rule on an element-wise
    non-linearity, whose input gets the relevance of its output, R_x = x * g * y / x = R_y."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(y / stabilized(x, RATIO_EPSILON))
        return y.clone()

    @staticmethod
    def backward(ctx: Any, gradient: torch.Tensor) -> tuple:
        (ratio,) = ctx.saved_tensors
        return gradient * ratio, None


class SoftmaxRule(Function):
    """``softmax(x)``; its own gradient, which in this form is the softmax's Taylor rule with its bias term,
    R_x = x (R - s sum R) :cite:p:`achtibat2024attnlrp`. The relevance the bias term absorbs (R_s - R_x, element-wise)
    is handed to ``keep``."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, dim: int, dtype: torch.dtype | None, keep: Callable[[torch.Tensor], None] | None
    ) -> torch.Tensor:
        s = torch.softmax(x, dim, dtype=dtype)
        ctx.save_for_backward(x, s)
        ctx.dim, ctx.keep = dim, keep
        return s

    @staticmethod
    def backward(ctx: Any, gradient: torch.Tensor) -> tuple:
        x, s = ctx.saved_tensors
        weighted = s * gradient
        gradient_x = (weighted - s * weighted.sum(ctx.dim, keepdim=True)).to(x.dtype)
        if ctx.keep is not None:
            ctx.keep(weighted.to(x.dtype) - x * gradient_x)
        return gradient_x, None, None, None


class AddedConstant(Function):
    """``x + constant``, its gradient passed to x unchanged; the constant's relevance (its value times the gradient,
    which LRP-0 gives it) handed to ``keep``, so that it is reported rather than lost: a relative position bias or a
    shifted window's mask added to attention scores."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, constant: torch.Tensor, keep: Callable[[torch.Tensor], None]
    ) -> torch.Tensor:
        out = x + constant
        ctx.save_for_backward(constant)
        ctx.keep, ctx.shape = keep, x.shape
        return out

    @staticmethod
    def backward(ctx: Any, gradient: torch.Tensor) -> tuple:
        (constant,) = ctx.saved_tensors
        ctx.keep(constant.to(gradient.dtype) * gradient)
        return gradient.sum_to_size(ctx.shape), None, None
