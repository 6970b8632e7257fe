"""LRP for sequence models: attention, transformer layers, LayerNorm, LSTM, GRU and RNN.

zennit has no rules for these modules. Under a zennit composite, what flows backward between hooked modules is
relevance, so these modules are canonized (:mod:`explainers._sequence_attention`,
:mod:`explainers._sequence_recurrent`): their forward is replaced by an explicit computation from hookable parts
(``nn.Linear`` over the module's own parameters, zennit ``Sum`` modules, constant-gate products), and zennit's own
rules do the arithmetic on those parts:

- linear maps (projections, recurrent weights, ``A @ V`` with the attention weights ``A`` held constant): epsilon rule
  :cite:p:`bach2015pixel`;
- sums (residual adds, recurrent pre-activations, the LSTM cell update): ``Norm``, relevance split in proportion to
  the terms;
- gate products: signal-take-all :cite:p:`arras2017explaining`; attention: value path only, nothing into the softmax
  :cite:p:`ali2022xai,achtibat2024attnlrp`;
- ``nn.LayerNorm``: the standard deviation held constant, the rest a linear map with the epsilon rule
  (:class:`explainers._rules.ConservingLayerNorm`); ``nn.RMSNorm`` is then a constant scaling, identity rule
  (``Pass``); both conserve relevance :cite:p:`ali2022xai,achtibat2024attnlrp`.

Use :func:`sequence_canonizers` and :func:`sequence_layer_map` together::

    LayerMapComposite(
        layer_map=sequence_layer_map(epsilon, stabilizer) + layer_map_base(stabilizer) + [...],
        canonizers=sequence_canonizers(model),
    )
"""

from __future__ import annotations

import functools
import weakref

import torch
from torch import nn
from zennit.canonizers import Canonizer
from zennit.core import Hook, RemovableHandle, RemovableHandleList, Stabilizer
from zennit.rules import Epsilon, Norm, Pass

from ._rules import ConservingLayerNorm
from ._sequence_attention import (
    AttentionCanonizer,
    EncoderCanonizer,
    TransformerLayerCanonizer,
    check_attention,
)
from ._sequence_layers import AttentionValues, StepLinear, StepSum
from ._sequence_recurrent import RECURRENT, RecurrentCanonizer, check_recurrent

__all__ = ["sequence_canonizers", "sequence_layer_map", "token_relevance"]

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
        self.calls = weakref.WeakSet()
        self.current = None

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
        self.current = self.rule.copy()
        self.current.active = self.active
        self.calls.add(self.current)
        return self.current.pre_forward(module, input)

    def post_forward(self, module, input, output):
        call, self.current = self.current, None
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


def sequence_canonizers(model: nn.Module) -> list[Canonizer]:
    """Fresh canonizers for the sequence modules in ``model`` (an empty list when it has none).

    Raises ``NotImplementedError`` for module options the rules do not cover (``nn.LSTM(proj_size>0)``,
    ``nn.MultiheadAttention(add_bias_kv=True)`` or ``add_zero_attn=True``), before anything is changed.
    """
    modules = list(model.modules())
    for module in modules:
        check_attention(module)
        check_recurrent(module)
    present = {
        AttentionCanonizer: nn.MultiheadAttention,
        TransformerLayerCanonizer: (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer),
        EncoderCanonizer: nn.TransformerEncoder,
        RecurrentCanonizer: RECURRENT,
    }
    return [canonizer() for canonizer, types in present.items() if any(isinstance(m, types) for m in modules)]


def sequence_layer_map(epsilon: float | Stabilizer, stabilizer: float | Stabilizer) -> list[tuple[type, Hook]]:
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


def token_relevance(relevance: torch.Tensor, *, batch_first: bool = True) -> torch.Tensor:
    """Sum a relevance at the embedding output over the embedding dimension: one score per token, shape (B, L).

    ``relevance`` is (B, L, E), or (L, B, E) with ``batch_first=False``.
    """
    if relevance.dim() != 3:
        raise ValueError(f"expected an embedding-output relevance of 3 dimensions, got shape {tuple(relevance.shape)}")
    scores = relevance.sum(-1)
    return scores if batch_first else scores.transpose(0, 1)
