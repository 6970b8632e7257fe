"""AttnLRP applied to the operations themselves: a ``TorchFunctionMode`` that, during the forward pass, gives each
operation that needs a rule its rule as its backward (:mod:`explainers.attnlrp._functions`), whatever model calls
it. Operations on activations only count: the model's parameters are frozen meanwhile, so ``requires_grad`` tells an
activation from a constant.

- dense layers and convolutions (``linear``, ``addmm``, ``conv1d``/``conv2d``): epsilon, or on a dense layer given
  one (by its weight) the gamma rule;
- products of two activations (``mul``, ``matmul``, ``bmm``, ``einsum``): the uniform rule;
- ``softmax``: its Taylor rule with the bias term, whose relevance is recorded (AttnLRP), or no relevance through it
  at all (CP-LRP: the attention weights held constant);
- ``layer_norm`` and ``rsqrt`` (RMSNorm): the normalising factor held constant;
- element-wise activations (``gelu``, ``silu``, ``relu``, ``tanh``, ``sigmoid``): the identity rule;
- ``scaled_dot_product_attention``: computed as its parts (query-key product, softmax, attention-value product),
  each with its rule; ``multi_head_attention_forward`` (``nn.MultiheadAttention``) likewise, projections included;
- ``add`` of a constant tensor to an activation (a relative position bias, a window mask): the constant's relevance
  recorded, per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ._functions import AddedConstant, Divide, EpsilonShare, GammaRule, IdentityRule, SoftmaxRule

#: the attention rules: AttnLRP's softmax rule, or CP-LRP's attention weights held constant
ATTENTION_RULES = ("attnlrp", "cp")


def check_attention_rule(attention: str) -> None:
    """A one-line error for an attention rule that is not one of :data:`ATTENTION_RULES`."""
    if attention not in ATTENTION_RULES:
        raise ValueError(f"attention must be one of {ATTENTION_RULES}, got {attention!r}")


def _active(value: Any) -> bool:
    """An activation: a tensor on the autograd graph (the parameters are frozen during an attribution)."""
    return isinstance(value, torch.Tensor) and value.requires_grad


class AttnLRPMode(TorchFunctionMode):
    """Inside this mode, the operations AttnLRP has a rule for carry it as their backward. ``epsilon`` is the
    epsilon of dense layers and convolutions; ``attention`` one of :data:`ATTENTION_RULES`; the relevance the
    softmax's bias term absorbs goes to ``absorbed`` (one tensor per softmax call, one value per sample)."""

    def __init__(
        self,
        epsilon: float = 1e-6,
        attention: str = "attnlrp",
        gammas: dict[torch.Tensor, float] | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__()
        check_attention_rule(attention)
        self.epsilon, self.attention, self.batch_size = epsilon, attention, batch_size
        #: the gamma of a dense layer, by the identity of its weight tensor (the others take epsilon)
        self.gammas = {id(weight): gamma for weight, gamma in (gammas or {}).items()}
        #: per sample, the relevance the softmax's bias terms absorbed (one tensor per call) and the constants added
        #: to activations took (one tensor per addition)
        self.absorbed: list[torch.Tensor] = []
        self.added: list[torch.Tensor] = []

    def per_sample(self, relevance: torch.Tensor) -> torch.Tensor:
        """Relevance summed per sample: over all but the first dimension, whose length is the batch size or a
        multiple of it with each sample's rows together (a batch of windows, as Swin's)."""
        if relevance.dim() == 0:
            return relevance.reshape(1)
        rows = self.batch_size or len(relevance)
        if len(relevance) % rows:
            raise ValueError(f"cannot tell the samples apart in a tensor of shape {tuple(relevance.shape)}")
        return relevance.reshape(rows, -1).sum(1)

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        handler = _HANDLERS.get(func)
        if handler is None:
            return func(*args, **kwargs)
        return handler(self, func, args, kwargs)

    # -- rules -----------------------------------------------------------------------------------------
    def linear(self, func: Callable, args: tuple, kwargs: dict, input_index: int, weight_index: int) -> Any:
        input, weight = _argument(args, kwargs, input_index, "input"), _argument(args, kwargs, weight_index, "weight")
        if not _active(input):
            return func(*args, **kwargs)
        if _active(weight):  # a product of two activations (a weight computed by the model)
            return Divide.apply(func(*args, **kwargs), 2.0)
        gamma = self.gammas.get(id(weight))
        if gamma is not None and func in (F.linear, torch.addmm):
            bias = _argument(args, kwargs, 2, "bias") if func is F.linear else _argument(args, kwargs, 0, "input")
            dense = weight if func is F.linear else weight.t()  # addmm(bias, x, weight) is x @ weight + bias
            return GammaRule.apply(input, dense, bias, gamma, self.epsilon)
        return EpsilonShare.apply(func(*args, **kwargs), self.epsilon)

    def product(self, func: Callable, args: tuple, kwargs: dict) -> Any:
        output = func(*args, **kwargs)
        operands = args[1:] if func is torch.einsum else args[:2]
        if func is torch.einsum and len(args) == 2 and isinstance(args[1], (list, tuple)):
            operands = tuple(args[1])
        active = sum(_active(operand) for operand in operands)
        return Divide.apply(output, float(active)) if active > 1 else output

    def softmax(self, func: Callable, args: tuple, kwargs: dict) -> Any:
        x = args[0]
        if not _active(x):
            return func(*args, **kwargs)
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        dtype = kwargs.get("dtype")
        if dim is None:
            raise ValueError("softmax without dim: give the dimension explicitly to explain this model")
        if self.attention == "cp":
            return func(*args, **kwargs).detach()
        return SoftmaxRule.apply(x, dim, dtype, lambda lost: self.absorbed.append(self.per_sample(lost)))

    def add(self, func: Callable, args: tuple, kwargs: dict) -> Any:
        """An addition of a constant tensor to an activation: the constant's relevance reported
        (:class:`AddedConstant`)."""
        if len(args) != 2 or kwargs or not all(isinstance(arg, torch.Tensor) for arg in args):
            return func(*args, **kwargs)
        (x, constant) = args if _active(args[0]) else args[::-1]
        if not _active(x) or _active(constant):
            return func(*args, **kwargs)
        return AddedConstant.apply(x, constant, lambda taken: self.added.append(self.per_sample(taken)))

    def layer_norm(self, func: Callable, args: tuple, kwargs: dict) -> Any:
        names = ("input", "normalized_shape", "weight", "bias", "eps")
        values = dict(zip(names, args), **kwargs)
        x = values["input"]
        if not _active(x):
            return func(*args, **kwargs)
        dims = tuple(range(-len(values["normalized_shape"]), 0))
        centred = x - x.mean(dims, keepdim=True)
        std = (centred.pow(2).mean(dims, keepdim=True) + values.get("eps", 1e-5)).sqrt().detach()
        y = centred / std
        if values.get("weight") is not None:
            y = y * values["weight"]
        if values.get("bias") is not None:
            y = y + values["bias"]
        return y

    def constant_factor(self, func: Callable, args: tuple, kwargs: dict) -> Any:
        """``rsqrt``: a normalising factor (RMSNorm), held constant."""
        return func(*args, **kwargs).detach()

    def activation(self, func: Callable, args: tuple, kwargs: dict) -> Any:
        x = args[0]
        if not _active(x):
            return func(*args, **kwargs)
        return IdentityRule.apply(x, func(x.detach(), *args[1:], **kwargs))

    def attention_product(self, func: Callable, args: tuple, kwargs: dict) -> Any:
        """``scaled_dot_product_attention`` as its parts, each with its rule (as an eager attention computes it)."""
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
        values = dict(zip(names, args), **kwargs)
        query, key, value = values["query"], values["key"], values["value"]
        if values.get("enable_gqa") and key.shape[-3] != query.shape[-3]:
            repeats = query.shape[-3] // key.shape[-3]
            key, value = key.repeat_interleave(repeats, -3), value.repeat_interleave(repeats, -3)
        scale = values.get("scale") or 1.0 / math.sqrt(query.shape[-1])
        scores = self.product(torch.matmul, (query, key.transpose(-2, -1)), {}) * scale
        length, source = query.shape[-2], key.shape[-2]
        lowest = torch.finfo(scores.dtype).min
        if values.get("is_causal"):
            causal = torch.ones(length, source, dtype=torch.bool, device=scores.device).tril(source - length)
            scores = scores.masked_fill(~causal, lowest)
        mask = values.get("attn_mask")
        if mask is not None:
            scores = scores.masked_fill(~mask, lowest) if mask.dtype == torch.bool else scores + mask
        weights = self.softmax(F.softmax, (scores, -1), {})
        return self.product(torch.matmul, (weights, value), {})

    def attention_module(self, func: Callable, args: tuple, kwargs: dict) -> Any:
        """``nn.MultiheadAttention`` (torchvision's ViT) as its parts: the packed input projection, the attention
        (:meth:`attention_product`) and the output projection, each through this mode's rules. Returns no attention
        weights."""
        values = dict(zip(_MHA_ARGUMENTS, args), **kwargs)
        unsupported = [name for name in _MHA_UNSUPPORTED if values.get(name) not in (None, False)]
        if unsupported:
            used = ", ".join(unsupported)
            raise ValueError(f"AttnLRP covers nn.MultiheadAttention with one packed projection; this one uses {used}")
        query, key, value = values["query"], values["key"], values["value"]  # (L, N, E)
        heads, (length, batch, width) = values["num_heads"], query.shape
        weights = values["in_proj_weight"].chunk(3)
        biases = (None,) * 3 if values["in_proj_bias"] is None else values["in_proj_bias"].chunk(3)
        gamma = self.gammas.get(id(values["in_proj_weight"]))
        if gamma is not None:  # the packed projection's gamma on each of its three parts
            self.gammas.update({id(weight): gamma for weight in weights})
        with self:  # the parts through this mode's rules
            q, k, v = (F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))
            q, k, v = (x.reshape(x.shape[0], batch, heads, width // heads).permute(1, 2, 0, 3) for x in (q, k, v))
            mask = values.get("attn_mask")
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=bool(values.get("is_causal")))
            out = out.permute(2, 0, 1, 3).reshape(length, batch, width)
            out = F.linear(out, values["out_proj_weight"], values["out_proj_bias"])
        if gamma is not None:  # the parts' ids are free for other tensors once they are gone
            for weight in weights:
                self.gammas.pop(id(weight), None)
        return out, None


#: ``F.multi_head_attention_forward``'s arguments in order, and those AttnLRP's decomposition does not cover
_MHA_ARGUMENTS = (
    "query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight", "in_proj_bias", "bias_k", "bias_v",
    "add_zero_attn", "dropout_p", "out_proj_weight", "out_proj_bias", "training", "key_padding_mask", "need_weights",
    "attn_mask", "use_separate_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "static_k", "static_v",
    "average_attn_weights", "is_causal",
)  # fmt: skip
_MHA_UNSUPPORTED = ("bias_k", "bias_v", "add_zero_attn", "key_padding_mask", "use_separate_proj_weight", "static_k")


def _argument(args: tuple, kwargs: dict, index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _handlers() -> dict[Callable, Callable]:
    linear: dict[Callable, tuple[int, int]] = {F.linear: (0, 1), F.conv1d: (0, 1), F.conv2d: (0, 1)}
    linear[torch.addmm] = (1, 2)  # transformers' Conv1D (GPT-2): addmm(bias, input, weight)
    table: dict[Callable, Callable] = {
        func: (lambda mode, f, a, k, i=i, w=w: mode.linear(f, a, k, i, w)) for func, (i, w) in linear.items()
    }
    products: tuple[Callable, ...] = (torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__)
    products += (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm, torch.Tensor.bmm, torch.einsum)
    table.update({func: AttnLRPMode.product for func in products})
    table.update({func: AttnLRPMode.softmax for func in (F.softmax, torch.softmax, torch.Tensor.softmax)})
    table[F.layer_norm] = AttnLRPMode.layer_norm
    table.update({func: AttnLRPMode.constant_factor for func in (torch.rsqrt, torch.Tensor.rsqrt)})
    activations: tuple[Callable, ...] = (F.gelu, F.silu, F.relu, torch.relu, torch.Tensor.relu, torch.tanh, F.tanh)
    activations += (torch.Tensor.tanh, torch.sigmoid, torch.Tensor.sigmoid, F.sigmoid)
    table.update({func: AttnLRPMode.activation for func in activations})
    table[F.scaled_dot_product_attention] = AttnLRPMode.attention_product
    table[F.multi_head_attention_forward] = AttnLRPMode.attention_module
    additions = (torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__)
    table.update({func: AttnLRPMode.add for func in additions})
    return table


_HANDLERS = _handlers()
