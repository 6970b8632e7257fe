"""Rules for the parts the sequence canonizers introduce (per-time-step linear maps and sums, ``A @ V``), for
``nn.MultiheadAttention`` itself and for LayerNorm/RMSNorm (:mod:`explainers.canonizers` rewrites the modules).

Use :func:`explainers.canonizers.sequence_canonizers` and :func:`sequence_layer_map` together::

    LayerMapComposite(
        layer_map=sequence_layer_map(epsilon, stabilizer) + layer_map_base(stabilizer) + [...],
        canonizers=sequence_canonizers(model),
    )
"""

from __future__ import annotations

import functools
import weakref

from torch import nn
from zennit.core import Hook, RemovableHandle, RemovableHandleList, Stabilizer
from zennit.rules import Epsilon, Norm, Pass

from ..canonizers import AttentionValues, StepLinear, StepSum
from ._layernorm import ConservingLayerNorm

_NORMS = tuple(norm for norm in (nn.LayerNorm, getattr(nn, "RMSNorm", None)) if norm is not None)


class PerCall(Hook):
    """Apply a fresh copy of ``rule`` at every call of the module.

    A zennit hook stores one input and one output gradient per module, which is wrong for a module called once per
    time step. This hook gives each call its own copy of ``rule``; the copy lives as long as the autograd graph of
    that call. The rule itself (e.g. Epsilon) is unchanged.
    """

    def __init__(self, rule: Hook):
        super().__init__()
        self.rule = rule
        self.calls: weakref.WeakSet[Hook] = weakref.WeakSet()
        self.current: Hook | None = None  # the copy of the call under way, between its pre- and post-forward

    def copy(self) -> PerCall:
        return PerCall(self.rule.copy())

    def register(self, module: nn.Module) -> RemovableHandleList:
        return RemovableHandleList(
            [
                RemovableHandle(self),
                module.register_forward_pre_hook(self.pre_forward),
                module.register_forward_hook(self.post_forward),
            ]
        )

    def pre_forward(self, module, input):
        self.current = current = self.rule.copy()
        current.active = self.active
        self.calls.add(current)
        return current.pre_forward(module, input)

    def post_forward(self, module, input, output):
        call, self.current = self.current, None
        assert call is not None, "post_forward without pre_forward"
        call.forward(module, input, output)
        if "input" in call.stored_tensors:
            # the stored input's graph leads back to this call's own hooks: a reference cycle through the autograd
            # graph that Python's garbage collector cannot see, so copies would pile up until ``remove``
            call.stored_tensors["input"] = tuple(tensor.detach() for tensor in call.stored_tensors["input"])
        output = call.post_forward(module, input, output)
        if output.grad_fn is not None:
            # the graph holds this copy (not only weakly, as zennit's own tensor hooks do) until the graph is freed
            call.tensor_handles.append(output.grad_fn.register_hook(functools.partial(_hold, call)))
        return output

    def remove(self):
        for call in list(self.calls):
            call.remove()
        super().remove()


def _hold(call: Hook, grad_input, grad_output) -> None:
    """A no-op tensor hook whose only job is to keep ``call`` alive."""


class NoRule(Hook):
    """No hook on the module itself: its canonized forward is made of hooked parts that carry the rules.

    Needed for ``nn.MultiheadAttention``, which zennit counts as an activation and would otherwise give ``Pass``
    (relevance copied from its output to its query input), overriding the value-path rule.
    """

    def register(self, module: nn.Module) -> RemovableHandleList:
        return RemovableHandleList()


def sequence_layer_map(
    epsilon: float | Stabilizer, stabilizer: float | Stabilizer
) -> list[tuple[type | tuple[type, ...], Hook]]:
    """(module type, rule) pairs for the parts the sequence canonizers introduce, and for LayerNorm.

    Prepend them to a layer map with zennit's ``layer_map_base(stabilizer)`` and a rule for ``nn.Linear``, and use
    them whenever :func:`sequence_canonizers` are used (any composite, not only uniform epsilon): without them the
    per-time-step modules get one rule per module instead of one per call, and zennit gives
    ``nn.MultiheadAttention`` its ``Pass`` rule, which fails on ``attention(x, x, x)``.

    - recurrent hidden-to-hidden maps and ``A @ V``: epsilon rule :cite:p:`bach2015pixel` with ``epsilon``
      (``epsilon=0`` gives LRP-0; larger values absorb more relevance);
    - per-step sums: ``Norm`` (proportional split), ``stabilizer`` guarding its division;
    - ``nn.MultiheadAttention`` itself: no hook (its canonized parts carry the rules);
    - ``nn.LayerNorm``: the standard deviation held constant, epsilon rule on the remaining linear map (mean
      subtraction and scale), ``stabilizer`` guarding its division; ``nn.RMSNorm``: identity rule (``Pass``), the
      normalisation a constant scaling :cite:p:`ali2022xai,achtibat2024attnlrp`.
    """
    return [
        (StepLinear, PerCall(Epsilon(epsilon))),
        (StepSum, PerCall(Norm(stabilizer))),
        (AttentionValues, Epsilon(epsilon)),
        (nn.MultiheadAttention, NoRule()),
        (nn.LayerNorm, ConservingLayerNorm(stabilizer)),
        (_NORMS, Pass()),
    ]
