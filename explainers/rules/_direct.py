"""Direct gradients of z-plus and gamma on zero-padded convolutions and dense layers: no autograd graph per
modified pass, and the unmodified pass read from the layer's own output."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol, cast

import torch
import torch.nn.functional as F
from torch.nn.modules.conv import _ConvNd
from zennit.core import Stabilizer

_CONVOLUTIONS: dict[type[torch.nn.Module], Callable[..., torch.Tensor]] = {
    torch.nn.Conv1d: F.conv1d,
    torch.nn.Conv2d: F.conv2d,
    torch.nn.Conv3d: F.conv3d,
}


class _Layer(Protocol):
    """A convolution or a dense layer, as these functions read it: a weight and an optional bias."""

    @property
    def weight(self) -> torch.Tensor: ...

    @property
    def bias(self) -> torch.Tensor | None: ...


def plain_epsilon(stabilizer_fn: Callable[[torch.Tensor], torch.Tensor]) -> float | None:
    """The epsilon of a plain zennit Stabilizer (adds epsilon * sign, no clipping or scaling), where ``|part| <=
    epsilon`` says a part is empty; None for any other stabilizer (the general test then)."""
    if type(stabilizer_fn) is not Stabilizer:
        return None
    stabilizer = cast(Stabilizer, stabilizer_fn)
    if not stabilizer.clip and not stabilizer.norm_scale:
        return float(stabilizer.epsilon)
    return None


def stabilized(total: torch.Tensor, epsilon: float) -> torch.Tensor:
    """total + epsilon * sign(total) with sign +1 at 0: zennit's plain Stabilizer, bit for bit, in three passes
    instead of seven (-0.0 + 0.0 is +0.0, so a zero of either sign counts as positive, as zennit's)."""
    return torch.full_like(total, epsilon).copysign_(total.add(0.0)).add_(total)


def epsilon_floor(epsilon: float, like: torch.Tensor) -> float:
    """The smallest denominator at a neuron whose share is 0 anyway: epsilon, or the smallest normal number of the
    dtype where epsilon is 0 (a non-zero denominator keeps 0 * R / z free of NaN)."""
    return max(epsilon, torch.finfo(like.dtype).tiny)


def channel_dim(module: torch.nn.Module) -> int:
    """The dimension of a layer's input and output channels: 1 on a convolution, the last on a dense layer."""
    return -1 if isinstance(module, torch.nn.Linear) else 1


def per_channel(module: torch.nn.Module, tensor: torch.Tensor, reduce: Callable) -> torch.Tensor:
    """``tensor`` (a layer's output) reduced over every dimension but the channels (a dense layer's: the last)."""
    channel = channel_dim(module) % tensor.dim()
    dims = tuple(dim for dim in range(tensor.dim()) if dim != channel)
    return reduce(tensor, dims) if dims else tensor


def is_zeroed(name: str, zero_params: str | list[str] | None) -> bool:
    """Whether a ParamMod with ``zero_params`` sets the parameter ``name`` to zero."""
    if not zero_params:
        return False
    return name == zero_params if isinstance(zero_params, str) else name in zero_params


def takes_direct_path(module: torch.nn.Module, zero_params: str | list[str] | None, input: torch.Tensor) -> bool:
    """Whether the rule's gradients on ``module`` are computed directly: a dense layer or a zero-padded convolution
    on a batched input (exactly those types: a subclass may change the forward) whose weight is kept."""
    if is_zeroed("weight", zero_params):
        return False
    if type(module) is torch.nn.Linear:
        return True
    return is_zero_padded_convolution(module) and input.dim() == len(cast(_ConvNd, module).kernel_size) + 2


def is_zero_padded_convolution(module: torch.nn.Module) -> bool:
    """A convolution of exactly torch's types (a subclass may change the forward) with zero padding given per
    dimension."""
    return (
        type(module) in _CONVOLUTIONS
        and getattr(module, "padding_mode", "") == "zeros"
        and isinstance(getattr(module, "padding", None), tuple)
    )


def weight_and_bias(
    module: torch.nn.Module, zero_params: str | list[str] | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The layer's weight and bias, detached; no bias where there is none or ``zero_params`` zeroes it."""
    layer = cast(_Layer, module)
    bias = None if layer.bias is None or is_zeroed("bias", zero_params) else layer.bias.detach()
    return layer.weight.detach(), bias


def is_nonnegative(input: torch.Tensor) -> bool:
    """Whether ``input`` has no negative value (one reduction)."""
    return input.numel() == 0 or bool(input.amin() >= 0)


def modified_forward(
    module: torch.nn.Module, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """The layer (a convolution or a dense layer) with other weights."""
    if isinstance(module, torch.nn.Linear):
        return F.linear(input, weight, bias)
    conv, layer = _CONVOLUTIONS[type(module)], cast(_ConvNd, module)
    return conv(input, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)


def direct_input_gradient(
    module: torch.nn.Module,
    input: torch.Tensor,
    weight: torch.Tensor,
    grad_output: torch.Tensor,
    groups: int | None = None,
) -> torch.Tensor:
    """The gradient of ``sum(grad_output * layer(input; weight))`` with respect to the input, without a graph (the
    bias plays no part); ``groups`` overrides the convolution's groups (a subset of them)."""
    if isinstance(module, torch.nn.Linear):
        return grad_output @ weight
    dims, layer = input.dim() - 2, cast(_ConvNd, module)
    return torch.ops.aten.convolution_backward(
        grad_output,
        input,
        weight,
        None,
        layer.stride,
        layer.padding,
        layer.dilation,
        False,
        [0] * dims,
        layer.groups if groups is None else groups,
        [True, False, False],
    )[0]


def store_output(stored_tensors: dict, output: torch.Tensor) -> None:
    """Keep the layer's output (detached) and its version, to tell whether an in-place operation changed it since;
    forget the parts computed from the previous forward pass (:func:`contributions`)."""
    stored_tensors["output"] = output.detach()
    stored_tensors["output_version"] = output._version
    stored_tensors["parts"] = {}


def contributions(
    stored_tensors: dict,
    module: torch.nn.Module,
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    w_same: torch.Tensor | None = None,
    positive: bool = True,
    signs: Signs | None = None,
) -> torch.Tensor:
    """z+_j = (x+ w+ + x- w-)_j + b+_j (z-plus's total, the positive part of gamma and alpha-beta), or with
    ``positive=False`` z-_j = (x+ w- + x- w+)_j + b-_j; ``bias`` None where it is zeroed. One pass on an input
    without negative values. Kept with the layer's output, so the configurations that share a forward pass compute it
    once: callers must not change it in place. ``w_same``: w+ (w- for the negative part), ``signs``: the input's
    :func:`split_signs`, where the caller has them."""
    parts = stored_tensors.setdefault("parts", {})
    key = _part_key(positive, bias)
    if key not in parts:
        if w_same is None:
            w_same = weight.clamp(min=0) if positive else weight.clamp(max=0)
        b_same = None if bias is None else bias.clamp(min=0) if positive else bias.clamp(max=0)
        if nonnegative_input(stored_tensors, input):
            parts[key] = modified_forward(module, input, w_same, b_same)
        else:
            w_other = weight - w_same  # w- for the positive part, w+ for the negative one
            signs = split_signs(module, input) if signs is None else signs
            parts[key] = signed_forward(module, signs, w_same, w_other, b_same)
    return parts[key]


class Signs(NamedTuple):
    """A layer input's positive and negative parts, x+ and x-; on a dense layer or a convolution with one group,
    views of ``both``, the two side by side on the channel dimension (one pass of the layer then takes both)."""

    both: torch.Tensor | None
    plus: torch.Tensor
    minus: torch.Tensor


def split_signs(module: torch.nn.Module, input: torch.Tensor) -> Signs:
    """x+ and x- of ``input``, side by side where the layer has one group (:class:`Signs`)."""
    if getattr(module, "groups", 1) != 1:
        return Signs(None, input.clamp(min=0), input.clamp(max=0))
    channel = channel_dim(module)
    shape = list(input.shape)
    shape[channel] *= 2
    both = input.new_empty(shape)
    plus, minus = both.chunk(2, channel)
    torch.clamp(input, min=0, out=plus)
    torch.clamp(input, max=0, out=minus)
    return Signs(both, plus, minus)


def signed_forward(
    module: torch.nn.Module, signs: Signs, w_plus: torch.Tensor, w_minus: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """x+ through ``w_plus`` plus x- through ``w_minus`` (and ``bias``): one pass of x+ and x- side by side where the
    layer has one group (up to twice as fast as two passes on the CPU), else two passes."""
    if signs.both is None:
        return modified_forward(module, signs.plus, w_plus, bias).add_(modified_forward(module, signs.minus, w_minus))
    return modified_forward(module, signs.both, torch.cat([w_plus, w_minus], dim=1), bias)


def signed_input_gradient(
    module: torch.nn.Module,
    input: torch.Tensor,
    signs: Signs,
    w_plus: torch.Tensor,
    w_minus: torch.Tensor,
    grad_output: torch.Tensor,
) -> torch.Tensor:
    """x+ (d layer(x; ``w_plus``) / dx)^T ``grad_output`` + x- (d layer(x; ``w_minus``) / dx)^T ``grad_output``: one
    backward pass through both weights side by side where the layer has one group, else two."""
    if signs.both is None:
        result = signs.plus * direct_input_gradient(module, input, w_plus, grad_output)
        return result.addcmul_(signs.minus, direct_input_gradient(module, input, w_minus, grad_output))
    weights = torch.cat([w_plus, w_minus], dim=1)
    gradient_plus, gradient_minus = direct_input_gradient(module, signs.both, weights, grad_output).chunk(
        2, channel_dim(module)
    )
    return (signs.plus * gradient_plus).addcmul_(signs.minus, gradient_minus)


def both_parts(
    stored_tensors: dict,
    module: torch.nn.Module,
    input: torch.Tensor,
    w_plus: torch.Tensor,
    w_minus: torch.Tensor,
    bias: torch.Tensor | None,
) -> None:
    """Keep z+ and z- of an input without negative values (:func:`contributions`) from one pass of the layer
    (a convolution with one group, or a dense layer), w+ and w- side by side as its outputs; none kept twice."""
    parts = stored_tensors.setdefault("parts", {})
    keys = [_part_key(True, bias), _part_key(False, bias)]
    if all(key in parts for key in keys):
        return
    both = None if bias is None else torch.cat([bias.clamp(min=0), bias.clamp(max=0)])
    output = modified_forward(module, input, torch.cat([w_plus, w_minus]), both)
    for key, part in zip(keys, output.chunk(2, channel_dim(module))):
        parts.setdefault(key, part)


def _part_key(positive: bool, bias: torch.Tensor | None) -> tuple[str, bool]:
    """Where z+ (or z-) is kept with the layer's output: by its sign and whether its bias is zeroed."""
    return ("positive" if positive else "negative", bias is None)


def nonnegative_input(stored_tensors: dict, input: torch.Tensor) -> bool:
    """:func:`is_nonnegative` of the layer's input, kept with its output (one reduction per forward pass)."""
    parts = stored_tensors.setdefault("parts", {})
    if "nonnegative" not in parts:
        parts["nonnegative"] = is_nonnegative(input)
    return parts["nonnegative"]


def stored_output(stored_tensors: dict, module: torch.nn.Module, input: torch.Tensor) -> torch.Tensor:
    """The layer's output of the forward pass, computed again where an in-place operation (a ReLU) changed it."""
    output = stored_tensors["output"]
    if output._version == stored_tensors["output_version"]:
        return output
    return modified_forward(module, input, *weight_and_bias(module, None))


def modified_total(
    stored_tensors: dict, module: torch.nn.Module, input: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """z_j = (W x + b)_j with ``bias`` (None where zero_params zeroes it): the layer's output, less its bias where
    that is zeroed (the canonizers merged BatchNorm into the layer before the forward pass, so both agree)."""
    output = stored_output(stored_tensors, module, input)
    layer_bias = cast(_Layer, module).bias
    if bias is None and layer_bias is not None:
        output = output - channel_view(module, layer_bias.detach(), output)
    return output


def channel_view(module: torch.nn.Module, vector: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-channel vector (a bias) shaped to broadcast over the layer's output ``like`` (a convolution's channels
    are dim 1, a dense layer's the last dim)."""
    if isinstance(module, torch.nn.Linear):
        return vector
    return vector.view(-1, *([1] * (like.dim() - 2)))


def held_channels(
    module: torch.nn.Module, held: torch.Tensor, input: torch.Tensor
) -> tuple[int | None, torch.Tensor | None, torch.Tensor | None]:
    """(groups, output channels, input channels) of the convolution restricted to the output channels (a grouped
    convolution: the groups) that hold an empty neuron (``held``); Nones on a dense layer, and where more than half
    hold one (the copies of the restriction would cost more than the channels it spares)."""
    if isinstance(module, torch.nn.Linear) or len(held) == 1:
        return None, None, None
    in_channels = input.shape[1]
    channels = held.nonzero().flatten()
    groups = cast(_ConvNd, module).groups
    if groups == 1:
        return (None, channels, None) if 2 * len(channels) <= len(held) else (None, None, None)
    per_group_out, per_group_in = len(held) // groups, in_channels // groups
    group_index = torch.unique(channels // per_group_out)
    if 2 * len(group_index) > groups:
        return None, None, None
    within_out = torch.arange(per_group_out, device=channels.device)
    within_in = torch.arange(per_group_in, device=channels.device)
    out_index = (group_index[:, None] * per_group_out + within_out).flatten()
    in_index = (group_index[:, None] * per_group_in + within_in).flatten()
    return len(group_index), out_index, in_index
