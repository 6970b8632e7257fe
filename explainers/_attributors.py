"""zennit attributors for several inputs, extra forward arguments and intermediate layers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from zennit.attribution import Gradient
from zennit.core import Composite


class ModelInputError(ValueError):
    """The model could not run on the inputs it was given."""


class InputGradient(Gradient):
    """zennit's :class:`~zennit.attribution.Gradient` for a tuple of inputs plus extra forward arguments.

    With an LRP composite the modified gradient at each input is its relevance.
    """

    def __init__(self, model: nn.Module, composite: Composite | None = None, additional_args: Sequence = ()):
        super().__init__(model=model, composite=composite)
        self.additional_args = tuple(additional_args)

    def forward(self, input, attr_output_fn):
        inputs = tuple(tensor.detach().requires_grad_(tensor.is_floating_point()) for tensor in as_tuple(input))
        output = run_model(self.model, inputs, self.additional_args)
        grads = torch.autograd.grad((output,), self.sources(inputs), grad_outputs=(attr_output_fn(output),))
        return output, grads

    def sources(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """The tensors whose gradient is the attribution."""
        return inputs


class LayerGradient(InputGradient):
    """Relevance at the outputs of intermediate ``layers`` instead of at the inputs."""

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[nn.Module],
        composite: Composite | None = None,
        additional_args: Sequence = (),
    ):
        super().__init__(model=model, composite=composite, additional_args=additional_args)
        self.layers = list(layers)
        self._outputs: dict = {}

    def forward(self, input, attr_output_fn):
        self._outputs = {}
        # registered after the composite's own hooks, so each captures the tensor the next layer receives
        handles = [layer.register_forward_hook(self._capture(index)) for index, layer in enumerate(self.layers)]
        try:
            return super().forward(input, attr_output_fn)
        finally:
            for handle in handles:
                handle.remove()
            self._outputs = {}

    def sources(self, inputs):
        missing = [index for index in range(len(self.layers)) if index not in self._outputs]
        if missing:
            raise ValueError(f"layer(s) {[self.layers[i] for i in missing]} did not run in the model's forward pass")
        return tuple(self._outputs[index] for index in range(len(self.layers)))

    def _capture(self, index: int) -> Callable:
        def hook(module, args, output):
            if index in self._outputs:
                raise ValueError(
                    f"layer {module} runs more than once per forward pass; attribute at one that runs once"
                )
            self._outputs[index] = output[0] if isinstance(output, (tuple, list)) else output

        return hook


def run_model(model: nn.Module, inputs: tuple, additional_args: tuple) -> torch.Tensor:
    """``model(*inputs, *additional_args)``, with a clear error when the model rejects the inputs."""
    try:
        output = model(*inputs, *additional_args)
    except (RuntimeError, TypeError, ValueError, IndexError) as error:
        shapes = ", ".join(str(tuple(x.shape)) if torch.is_tensor(x) else type(x).__name__ for x in inputs)
        raise ModelInputError(
            f"the model rejected inputs of shape {shapes}: {error}. "
            "Pass inputs shaped as the model expects (batch first), or a forward_arg_extractor "
            "that picks the model's arguments from the batch."
        ) from error
    if not torch.is_tensor(output) or output.ndim != 2:
        shape = tuple(output.shape) if torch.is_tensor(output) else type(output).__name__
        raise ModelInputError(f"the model returned {shape}; LRP needs logits shaped (batch, classes)")
    return output


def as_tuple(value) -> tuple:
    """A tuple of the values of a tuple or list, else a tuple of the one value."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)
