"""LayerNorm with its standard deviation held constant and the epsilon rule on the linear map that remains."""

from __future__ import annotations

from typing import cast

import torch
from torchvision.models.convnext import LayerNorm2d
from zennit.core import Hook, Stabilizer

from ._shares import StabilizerLike


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
        return (self.relevance(module, self.stored_tensors["input"], grad_output[0]),)

    def relevance(self, module: torch.nn.Module, input: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
        """R_x of the layer's input ``input`` from the relevance of its output (this rule's backward)."""
        x, out_dtype, layer = input, relevance.dtype, cast(torch.nn.LayerNorm, module)
        channels_first = isinstance(module, LayerNorm2d)
        if channels_first:  # LayerNorm2d normalises dim 1: move it last, as its own forward does
            x = x.movedim(1, -1)
        dims = tuple(range(-len(layer.normalized_shape), 0))
        centred = x - x.mean(dims, keepdim=True)
        std = (centred.pow(2).mean(dims, keepdim=True) + layer.eps).sqrt()
        weight = layer.weight if layer.weight is not None else torch.ones((), dtype=x.dtype, device=x.device)
        output = weight * centred / std
        if layer.bias is not None:
            output = output + layer.bias
        relevance = relevance.movedim(1, -1) if channels_first else relevance
        share = weight * relevance / self.stabilizer_fn(output)
        result = x * (share - share.mean(dims, keepdim=True)) / std
        return (result.movedim(-1, 1) if channels_first else result).to(out_dtype)

    def copy(self) -> ConservingLayerNorm:
        return type(self)(self.stabilizer)
