"""A layer whose backward is its rule: the forward runs the layer as it is, keeps its input and output, and the
backward returns the rule's relevance instead of the gradient (what flows backward between layers under LRP)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from ..rules._direct import _CONVOLUTIONS, store_output
from ._rules import EngineRule


class RuleSlot:
    """The rule one layer applies in the backward; several backward passes over one forward (configurations that
    share it) set it in turn."""

    def __init__(self, rule: EngineRule, forward: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.rule, self.forward = rule, forward
        #: whether another backward over the same forward follows, which reuses the parts this one computes (the
        #: contributions of z-plus, gamma and alpha-beta); otherwise they are dropped as soon as the layer is done
        self.keep_parts = False


class _RuleBackward(torch.autograd.Function):
    """``forward(input)`` of the layer; its backward is ``slot.rule.relevance`` of the incoming relevance."""

    @staticmethod
    def forward(ctx: Any, input: torch.Tensor, forward: Callable, module: nn.Module, slot: RuleSlot) -> torch.Tensor:
        output = forward(input)
        if output._base is not None or output is input:  # autograd forbids changing a custom Function's view in place
            output = output.clone()
        ctx.module, ctx.slot, ctx.stored = module, slot, {}
        store_output(ctx.stored, output)  # an alias: the rule of a later backward over this forward may read it
        ctx.save_for_backward(input)
        return output

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple:
        (input,) = ctx.saved_tensors
        result = ctx.slot.rule.relevance(ctx.module, input, ctx.stored, relevance)
        if not ctx.slot.keep_parts:
            ctx.stored.pop("parts", None)
        return result, None, None, None


class EngineHandle:
    """Undoes :func:`install`: the module's own forward (and in-place flag) back."""

    def __init__(self, module: nn.Module, installed: Callable, previous: Callable | None, inplace: bool | None) -> None:
        self.module, self.installed, self.previous, self.inplace = module, installed, previous, inplace

    def remove(self) -> None:
        if self.module.__dict__.get("forward") is self.installed:  # not already undone by a canonizer's removal
            if self.previous is None:
                del self.module.forward
            else:
                self.module.forward = self.previous
        if self.inplace is not None:
            self.module.inplace = self.inplace  # type: ignore[assignment]


def install(module: nn.Module, slot: RuleSlot) -> EngineHandle:
    """Make ``module``'s backward its rule until the handle is removed. An in-place activation runs out of place
    meanwhile, so the output the layer before it keeps stays as it was."""
    previous, forward = module.__dict__.get("forward"), slot.forward
    inplace = getattr(module, "inplace", None) if isinstance(getattr(module, "inplace", None), bool) else None
    if inplace:
        module.inplace = False  # type: ignore[assignment]
    dims = len(cast(_ConvNd, module).kernel_size) + 2 if type(module) in _CONVOLUTIONS else None
    name = type(module).__name__

    def rule_forward(input: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if args or kwargs or not torch.is_tensor(input):
            raise TypeError(f"{name} got more than one argument; attribute inside explainers.engine.zennit_hooks()")
        if dims is not None and input.dim() != dims:
            raise ValueError(f"{name} expects a batched input of {dims} dimensions, got {input.dim()}")
        if not (torch.is_grad_enabled() and input.requires_grad):
            return forward(input)
        return _RuleBackward.apply(input, forward, module, slot)

    module.forward = rule_forward
    return EngineHandle(module, rule_forward, previous, inplace)
