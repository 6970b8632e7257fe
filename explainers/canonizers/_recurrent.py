"""LRP for ``nn.LSTM``, ``nn.GRU`` and ``nn.RNN``: a canonizer that unrolls them into hookable parts.

Rules (:cite:p:`arras2017explaining`, "signal-take-all"): the gates are held constant and relevance flows through the
signal path only; the linear maps (input-to-hidden, hidden-to-hidden) take the epsilon rule; sums split relevance in
proportion to their terms; the ``tanh``/``relu`` of the signal passes relevance unchanged.

- LSTM: ``c_t = f * c_{t-1} + i * g`` splits between ``c_{t-1}`` and ``g``; ``h_t = o * tanh(c_t)`` gives all to
  ``c_t``; ``g = tanh(W_ig x_t + W_hg h_{t-1})`` goes by the epsilon rule to ``x_t`` and ``h_{t-1}``.
- GRU: ``h_t = (1 - z) * n + z * h_{t-1}`` splits between ``n`` and ``h_{t-1}``;
  ``n = tanh(W_in x_t + r * (W_hn h_{t-1}))`` splits between ``x_t`` and ``h_{t-1}`` (gate ``r`` constant).
- RNN: ``h_t = act(W_ih x_t + W_hh h_{t-1})``.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence

from ._parts import ForwardCanonizer, SharedLinear, StepLinear, StepSum, add, relay, signal_take_all
from ._registry import register_canonizer

RECURRENT = (nn.LSTM, nn.GRU, nn.RNN)
_ACTIVATIONS = {"LSTM": torch.tanh, "GRU": torch.tanh, "RNN_TANH": torch.tanh, "RNN_RELU": torch.relu}


def check_recurrent(module: nn.Module) -> None:
    """Raise ``NotImplementedError`` for recurrent options the canonizer does not unroll."""
    if getattr(module, "proj_size", 0):
        raise NotImplementedError("LRP for nn.LSTM with proj_size > 0 is not supported")


class RecurrentCell(nn.Module):
    """One direction of one layer of a recurrent module, unrolled over time from hookable parts.

    ``input_linear`` maps the whole sequence at once; ``hidden_linear``, ``gate_sum`` and ``state_sum`` are called
    once per time step (hence the ``Step*`` types with per-call rules).
    """

    def __init__(self, mode: str, input_linear: SharedLinear, hidden_linear: StepLinear):
        super().__init__()
        self.mode = mode
        self.input_linear = input_linear
        self.hidden_linear = hidden_linear
        self.gate_sum = StepSum()
        self.state_sum = StepSum()

    def forward(self, sequence: torch.Tensor, state):
        """Run over ``sequence`` (T, B, F) from ``state`` (``h`` or ``(h, c)``); return the outputs and last state."""
        step = {"LSTM": self._lstm_step, "GRU": self._gru_step}.get(self.mode, self._rnn_step)
        outputs = []
        for projected in self.input_linear(sequence).unbind(0):
            state = step(projected, state)
            outputs.append(state[0] if self.mode == "LSTM" else state)
        return torch.stack(outputs), state

    def _lstm_step(self, projected, state):
        hidden, cell = state
        in_gate, forget_gate, signal, out_gate = add(self.gate_sum, projected, self.hidden_linear(hidden)).chunk(4, -1)
        cell = add(
            self.state_sum,
            signal_take_all(torch.sigmoid(forget_gate), cell),
            signal_take_all(torch.sigmoid(in_gate), relay(torch.tanh, signal)),
        )
        return signal_take_all(torch.sigmoid(out_gate), relay(torch.tanh, cell)), cell

    def _gru_step(self, projected, hidden):
        x_reset, x_update, x_new = projected.chunk(3, -1)
        h_reset, h_update, h_new = self.hidden_linear(hidden).chunk(3, -1)
        reset, update = torch.sigmoid(x_reset + h_reset), torch.sigmoid(x_update + h_update)
        new = relay(torch.tanh, add(self.gate_sum, x_new, signal_take_all(reset, h_new)))
        return add(self.state_sum, signal_take_all(1 - update, new), signal_take_all(update, hidden))

    def _rnn_step(self, projected, hidden):
        return relay(_ACTIVATIONS[self.mode], add(self.gate_sum, projected, self.hidden_linear(hidden)))


def _cells(module: nn.RNNBase) -> nn.ModuleList:
    cells = []
    for layer in range(module.num_layers):
        for suffix in ["", "_reverse"][: 1 + module.bidirectional]:

            def param(name):
                return getattr(module, f"{name}_l{layer}{suffix}", None)  # noqa: B023 (called in this iteration)

            cells.append(
                RecurrentCell(
                    module.mode,
                    SharedLinear(param("weight_ih"), param("bias_ih")),
                    StepLinear(param("weight_hh"), param("bias_hh")),
                )
            )
    return nn.ModuleList(cells)


def recurrent_forward(self: nn.RNNBase, input: torch.Tensor, hx=None):
    """Forward of ``nn.LSTM``/``nn.GRU``/``nn.RNN`` through ``self.lrp_cells``; same signature and outputs."""
    if isinstance(input, PackedSequence):
        raise NotImplementedError("LRP for recurrent modules does not support PackedSequence input; pad it")
    is_lstm = self.mode == "LSTM"
    batched = input.dim() == 3
    if not batched:
        input = input.unsqueeze(1)
        if hx is not None:
            hx = tuple(state.unsqueeze(1) for state in hx) if is_lstm else hx.unsqueeze(1)
    elif self.batch_first:
        input = input.transpose(0, 1)
    directions = 1 + self.bidirectional
    if hx is None:
        zeros = input.new_zeros(self.num_layers * directions, input.shape[1], self.hidden_size)
        hx = (zeros, zeros) if is_lstm else zeros

    layer_input, finals, cells = input, [], cast(nn.ModuleList, self.lrp_cells)
    for layer in range(self.num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            state = (hx[0][index], hx[1][index]) if is_lstm else hx[index]
            sequence = layer_input.flip(0) if direction else layer_input
            output, state = cells[index](sequence, state)
            outputs.append(output.flip(0) if direction else output)
            finals.append(state)
        layer_input = torch.cat(outputs, -1)
        if layer < self.num_layers - 1 and self.dropout:
            layer_input = F.dropout(layer_input, self.dropout, self.training)

    hidden: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
    if is_lstm:
        hidden = (torch.stack([h for h, _ in finals]), torch.stack([c for _, c in finals]))
    else:
        hidden = torch.stack(finals)
    if not batched:  # hidden is a tuple exactly for an LSTM
        if isinstance(hidden, tuple):
            return layer_input.squeeze(1), tuple(h.squeeze(1) for h in hidden)
        return layer_input.squeeze(1), hidden.squeeze(1)
    if self.batch_first:
        layer_input = layer_input.transpose(0, 1)
    return layer_input, hidden


@register_canonizer(*RECURRENT)
class RecurrentCanonizer(ForwardCanonizer):
    """Unroll every ``nn.LSTM``/``nn.GRU``/``nn.RNN`` into :class:`RecurrentCell` parts sharing its parameters.

    Relevance then follows the signal-take-all rules of :cite:p:`arras2017explaining` (see the module docstring).
    ``remove`` restores the module exactly. ``proj_size`` and ``PackedSequence`` input are not supported.
    """

    def __init__(self):
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(module: nn.Module) -> dict | None:
        if not isinstance(module, RECURRENT):
            return None
        check_recurrent(module)
        return {"forward": recurrent_forward.__get__(module), "lrp_cells": _cells(module)}
