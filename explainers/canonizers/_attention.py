"""LRP for ``nn.MultiheadAttention`` and transformer layers: canonizers with explicit, hookable forwards.

Rules:

- Attention: relevance flows through the value path only. The attention weights are held constant, so the output
  ``A @ V`` is a linear map of the values and takes the epsilon rule (:class:`AttentionValues`); nothing flows into
  the softmax, queries or keys. This is the conservative propagation of :cite:p:`ali2022xai` and the attention rule of
  AttnLRP :cite:p:`achtibat2024attnlrp`. The value and output projections are ``nn.Linear`` (epsilon rule).
- Encoder and decoder layers: the residual additions go through zennit ``Sum`` modules (relevance split in proportion
  to the two terms, instead of being copied to both); the feed-forward activation passes relevance unchanged.
"""

from __future__ import annotations

from typing import cast, overload

import torch
from torch import nn
from torch.nn import functional as F

from ._parts import AttentionValues, ForwardCanonizer, SharedLinear, add, attend, relay, term_sum
from ._registry import register_canonizer


def check_attention(module: nn.Module) -> None:
    """Raise ``NotImplementedError`` for attention options the canonizer does not handle."""
    if isinstance(module, nn.MultiheadAttention) and (module.bias_k is not None or module.add_zero_attn):
        raise NotImplementedError("LRP for nn.MultiheadAttention with add_bias_kv or add_zero_attn is not supported")


def _projections(module: nn.MultiheadAttention) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(weight, bias) of the query, key and value projections, as views of the module's parameters."""
    if module._qkv_same_embed_dim:
        weights = module.in_proj_weight.chunk(3)
    else:
        weights = (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight)
    biases = (None,) * 3 if module.in_proj_bias is None else module.in_proj_bias.chunk(3)
    return list(zip(weights, biases))


@overload
def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor: ...


@overload
def _additive(mask: None, dtype: torch.dtype) -> None: ...


def _additive(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean mask (True = not allowed) as an additive float mask; a float mask as it is."""
    if mask is None or mask.is_floating_point():
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))


def attention_forward(
    self: nn.MultiheadAttention,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    need_weights: bool = True,
    attn_mask: torch.Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Forward of ``nn.MultiheadAttention`` with the value path through ``lrp_value`` and ``lrp_attention``."""
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint")
    batched = query.dim() == 3
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
    elif self.batch_first:
        query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    target_len, batch, embed_dim = query.shape
    source_len, heads, head_dim = key.shape[0], self.num_heads, self.head_dim

    (query_weight, query_bias), (key_weight, key_bias), _ = _projections(self)
    queries = F.linear(query, query_weight, query_bias).reshape(target_len, batch * heads, head_dim).transpose(0, 1)
    keys = F.linear(key, key_weight, key_bias).reshape(source_len, batch * heads, head_dim).transpose(0, 1)
    values = cast(SharedLinear, self.lrp_value)(value).reshape(source_len, batch * heads, head_dim).transpose(0, 1)

    scores = (queries * head_dim**-0.5) @ keys.transpose(1, 2)
    mask = _additive(attn_mask, scores.dtype)
    if key_padding_mask is not None:
        padding = _additive(key_padding_mask, scores.dtype).view(batch, 1, 1, source_len)
        padding = padding.expand(-1, heads, -1, -1).reshape(batch * heads, 1, source_len)
        mask = padding if mask is None else mask + padding
    if mask is not None:
        scores = scores + mask
    weights = F.dropout(scores.softmax(-1), self.dropout, self.training)

    output = attend(cast(AttentionValues, self.lrp_attention), weights, values)
    output = self.out_proj(output.transpose(0, 1).reshape(target_len, batch, embed_dim))
    if not batched:
        output = output.squeeze(1)
    elif self.batch_first:
        output = output.transpose(0, 1)
    if not need_weights:
        return output, None
    weights = weights.view(batch, heads, target_len, source_len)
    weights = weights.mean(1) if average_attn_weights else weights
    return output, weights if batched else weights.squeeze(0)


def encoder_layer_forward(
    self: nn.TransformerEncoderLayer,
    src: torch.Tensor,
    src_mask: torch.Tensor | None = None,
    src_key_padding_mask: torch.Tensor | None = None,
    is_causal: bool = False,
) -> torch.Tensor:
    """Forward of ``nn.TransformerEncoderLayer`` with the residual adds through ``lrp_sum1``/``lrp_sum2``."""
    x = src
    if self.norm_first:
        x = add(self.lrp_sum1, x, self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal=is_causal))
        return add(self.lrp_sum2, x, _feed_forward(self, self.norm2(x), self.dropout2))
    x = self.norm1(add(self.lrp_sum1, x, self._sa_block(x, src_mask, src_key_padding_mask, is_causal=is_causal)))
    return self.norm2(add(self.lrp_sum2, x, _feed_forward(self, x, self.dropout2)))


def decoder_layer_forward(
    self: nn.TransformerDecoderLayer,
    tgt: torch.Tensor,
    memory: torch.Tensor,
    tgt_mask: torch.Tensor | None = None,
    memory_mask: torch.Tensor | None = None,
    tgt_key_padding_mask: torch.Tensor | None = None,
    memory_key_padding_mask: torch.Tensor | None = None,
    tgt_is_causal: bool = False,
    memory_is_causal: bool = False,
) -> torch.Tensor:
    """Forward of ``nn.TransformerDecoderLayer`` with the residual adds through ``lrp_sum1``..``lrp_sum3``."""

    def attend_self(x):
        return self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal)

    def attend_memory(x):
        return self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal)

    x = tgt
    if self.norm_first:
        x = add(self.lrp_sum1, x, attend_self(self.norm1(x)))
        x = add(self.lrp_sum2, x, attend_memory(self.norm2(x)))
        return add(self.lrp_sum3, x, _feed_forward(self, self.norm3(x), self.dropout3))
    x = self.norm1(add(self.lrp_sum1, x, attend_self(x)))
    x = self.norm2(add(self.lrp_sum2, x, attend_memory(x)))
    return self.norm3(add(self.lrp_sum3, x, _feed_forward(self, x, self.dropout3)))


def _feed_forward(
    self: nn.TransformerEncoderLayer | nn.TransformerDecoderLayer, x: torch.Tensor, final_dropout: nn.Module
) -> torch.Tensor:
    """A transformer layer's feed-forward block with an activation that passes relevance unchanged."""
    return final_dropout(self.linear2(self.dropout(relay(self.activation, self.linear1(x)))))


def encoder_forward(
    self: nn.TransformerEncoder,
    src: torch.Tensor,
    mask: torch.Tensor | None = None,
    src_key_padding_mask: torch.Tensor | None = None,
    is_causal: bool | None = None,
) -> torch.Tensor:
    """Forward of ``nn.TransformerEncoder`` without its nested-tensor fast path (which bypasses the layers' forward)."""
    output = src
    for layer in self.layers:
        output = layer(output, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
    return output if self.norm is None else self.norm(output)


@register_canonizer(nn.MultiheadAttention)
class AttentionCanonizer(ForwardCanonizer):
    """Give every ``nn.MultiheadAttention`` an explicit forward whose value path is hookable.

    Adds ``lrp_value`` (the value projection, a ``nn.Linear`` over the module's own parameter memory) and
    ``lrp_attention`` (:class:`AttentionValues`); relevance follows :cite:p:`ali2022xai,achtibat2024attnlrp`.
    ``add_bias_kv`` and ``add_zero_attn`` are not supported.
    """

    def __init__(self):
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(module: nn.Module) -> dict | None:
        if not isinstance(module, nn.MultiheadAttention):
            return None
        check_attention(module)
        return {
            "forward": attention_forward.__get__(module),
            "lrp_value": SharedLinear(*_projections(module)[2]),
            "lrp_attention": AttentionValues(module.head_dim),
        }


@register_canonizer(nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
class TransformerLayerCanonizer(ForwardCanonizer):
    """Route the residual adds of every ``nn.TransformerEncoderLayer``/``DecoderLayer`` through zennit ``Sum``s.

    Without it, the plain ``x + block(x)`` passes the full relevance to both terms and relevance doubles at every add.
    The feed-forward activation passes relevance unchanged (instead of scaling it by its derivative).
    """

    def __init__(self):
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(module: nn.Module) -> dict | None:
        if isinstance(module, nn.TransformerEncoderLayer):
            return {"forward": encoder_layer_forward.__get__(module), "lrp_sum1": term_sum(), "lrp_sum2": term_sum()}
        if isinstance(module, nn.TransformerDecoderLayer):
            sums = {f"lrp_sum{index}": term_sum() for index in (1, 2, 3)}
            return {"forward": decoder_layer_forward.__get__(module), **sums}
        return None


@register_canonizer(nn.TransformerEncoder)
class EncoderCanonizer(ForwardCanonizer):
    """Give every ``nn.TransformerEncoder`` a plain loop over its layers (no nested-tensor fast path)."""

    def __init__(self):
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(module: nn.Module) -> dict | None:
        if not isinstance(module, nn.TransformerEncoder):
            return None
        return {"forward": encoder_forward.__get__(module)}
