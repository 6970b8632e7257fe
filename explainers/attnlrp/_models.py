"""AttnLRP on a whole model: its parameters frozen (so only activations carry gradients), its element-wise activation
modules given the identity rule, the constants added to its activations (position and token-type embeddings)
reported, and :class:`~explainers.attnlrp._mode.AttnLRPMode` on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from ._functions import IdentityRule
from ._groups import dense_weight
from ._mode import AttnLRPMode

#: torch's element-wise activation modules (transformers' own are recognised by their module, see below)
_ACTIVATIONS = (
    nn.GELU, nn.SiLU, nn.ReLU, nn.Tanh, nn.Mish, nn.LeakyReLU, nn.ELU, nn.Hardswish, nn.ReLU6,
    nn.Sigmoid, nn.Hardsigmoid,
)  # fmt: skip


def is_activation(module: nn.Module) -> bool:
    """An element-wise activation module: torch's, or one of ``transformers.activations`` (GELU variants written
    as formulas, whose parts alone would get the product rule)."""
    return isinstance(module, _ACTIVATIONS) or type(module).__module__ == "transformers.activations"


@dataclass
class Attribution:
    """What an AttnLRP pass keeps: the mode, and the constants added to the activations, by name, each expanded to
    the batch so that its relevance is per sample (its tensor receives a gradient)."""

    mode: AttnLRPMode
    batch_size: int
    constants: dict[str, torch.Tensor] = field(default_factory=dict)

    def absorbed(self, gradients: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per sample, the relevance each reported part absorbed: the softmax's bias terms, summed over its calls,
        the constant tensors added to activations (relative position biases, window masks), and each constant's share
        (its value times its gradient, from ``gradients`` by name)."""
        parts: dict[str, torch.Tensor] = {}
        if self.mode.absorbed:
            parts["softmax bias"] = torch.stack(self.mode.absorbed).sum(0)
        if self.mode.added:
            parts["added constants"] = torch.stack(self.mode.added).sum(0)
        for name, constant in self.constants.items():
            gradient = gradients.get(name)
            if gradient is not None:
                parts[name] = (constant * gradient).flatten(1).sum(1)
        return parts


@contextlib.contextmanager
def attention_rules(
    model: nn.Module,
    batch_size: int,
    epsilon: float = 1e-6,
    attention: str = "attnlrp",
    constants: dict[str, nn.Module] | None = None,
    gammas: dict[nn.Module, float] | None = None,
) -> Iterator[Attribution]:
    """Inside this block a forward pass of ``model`` builds the AttnLRP backward (``attention``: "attnlrp" or
    "cp"). ``constants``: modules whose outputs are constants added to the activations (position and token-type
    embeddings), reported by name; ``gammas``: dense layers that take the gamma rule instead of epsilon, with their
    gamma. Everything is undone on leaving, also on error."""
    by_weight = {dense_weight(layer): gamma for layer, gamma in (gammas or {}).items()}
    record = Attribution(AttnLRPMode(epsilon, attention, by_weight, batch_size), batch_size)
    frozen = [parameter for parameter in model.parameters() if parameter.requires_grad]
    handles = [module.register_forward_hook(_identity_rule) for module in model.modules() if is_activation(module)]
    for name, module in (constants or {}).items():
        handles.append(module.register_forward_hook(_reported(record, name)))
    try:
        for parameter in frozen:
            parameter.requires_grad_(False)
        with record.mode:
            yield record
    finally:
        for handle in handles:
            handle.remove()
        for parameter in frozen:
            parameter.requires_grad_(True)


def _identity_rule(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
    """The identity rule on an activation module as a whole (its parts' own rules, computed inside, are dropped)."""
    if not inputs or not isinstance(inputs[0], torch.Tensor) or not inputs[0].requires_grad:
        return None
    return IdentityRule.apply(inputs[0], output.detach())


def _reported(record: Attribution, name: str):
    """A forward hook that makes the module's output a reported constant: expanded to the batch, on the graph."""

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        constant = output.detach()
        if constant.dim() > 0 and constant.shape[0] == 1 and record.batch_size > 1:
            constant = constant.expand(record.batch_size, *constant.shape[1:])
        constant = constant.clone().requires_grad_(True)
        record.constants[name] = constant
        return constant

    return hook
