"""Canonizers for torchvision's vision transformers: ViT, Swin (v1 and v2) and MaxViT.

Under a zennit composite, what flows backward between hooked modules is relevance, so every piece of arithmetic a
block does outside its submodules must say how it passes relevance on. Each canonizer here gives one torchvision
class an explicit forward that computes the same output from hookable parts, for the duration of one attribution
(zennit ``AttributeCanonizer``; removing it restores the class's own forward and drops the helper modules):

- attention (Swin's shifted-window attention, MaxViT's relative-position attention): the attention weights ``A`` are
  held constant, everything inside the softmax included (query-key products, the relative position bias, Swin's
  shift mask, Swin v2's cosine similarity, logit scale and ``cpb_mlp`` bias). Relevance flows through the value path
  only: ``A @ V`` is a linear map of the values and takes the epsilon rule (:class:`AttentionValues`), the query /
  key / value and output projections are the blocks' own ``nn.Linear`` modules with their rules (the query and key
  parts of a packed ``qkv`` projection receive no relevance). This is the conservative propagation of
  :cite:p:`ali2022xai` and the attention rule of AttnLRP :cite:p:`achtibat2024attnlrp`. torchvision's
  ``shifted_window_attention`` calls ``F.linear`` with the ``qkv``/``proj`` weights, so without the canonizer
  zennit's hooks on those modules never fire and the plain gradient runs through the softmax;
- residual adds ``x + f(x)``: through a zennit :class:`~zennit.layer.Sum`, whose ``Norm`` rule splits relevance in
  proportion to the two terms (instead of copying it into both, which doubles it at every block);
- padding, cyclic shifts, window / grid partitions and patch merging are re-indexings whose gradient passes
  relevance on unchanged; GELU and Tanh take the identity rule (``Pass``) of the composites, LayerNorm the epsilon
  rule on its linear map with the standard deviation held constant (:class:`explainers.rules.ConservingLayerNorm`:
  the identity rule put relevance on inputs the mean subtraction had moved near zero, and Swin v2's post-norm
  blocks then amplified it to 1e9).

ViT's class token and position embedding are constants of the model, not functions of the image, so they absorb
relevance like a bias does. It is reported, not lost: the position embedding add ``tokens + pos_embedding`` goes
through a ``Sum`` (the embedding gets its proportional share, as every other summand; treating it as a bias under
LRP-0 gives it the same share), and the relevance reaching the class token row of the token sequence is the class
token's. Both are recorded per sample into :attr:`LRPBase.last_absorbed` (``"class_token"``,
``"position_embedding"``), so that image relevance plus absorbed relevance is the relevance put in at the output.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import maxvit, swin_transformer, vision_transformer
from zennit.layer import Sum

from ._absorbed import ABSORBED
from ._parts import AttentionValues, ForwardCanonizer, add, attend, term_sum
from ._registry import register_canonizer


def record_absorbed(tensor: torch.Tensor, name: str, part: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Report the relevance that reaches ``part(tensor)`` as absorbed by the model constant ``name``.

    The explainer's dict (:data:`explainers.canonizers.ABSORBED`) is looked up now, at forward time, and a tensor hook
    adds the per-sample sum of ``part`` of the relevance arriving at ``tensor`` to it during the backward pass
    (which may run on another thread). Nothing is recorded outside an attribution or without gradients.
    """
    sink = ABSORBED.get()
    if sink is None or not tensor.requires_grad:
        return

    def hook(relevance: torch.Tensor) -> None:
        absorbed = part(relevance).detach().flatten(1).sum(1)
        sink[name] = sink[name] + absorbed if name in sink else absorbed

    tensor.register_hook(hook)


# -- ViT -------------------------------------------------------------------------------------------------------------
def vit_forward(self: vision_transformer.VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """``VisionTransformer.forward`` with the position embedding added to the patch tokens through ``lrp_position``
    (its share reported) and the class token row (class token plus its position embedding, one constant) reported
    whole: splitting its relevance between two constants would say nothing about the image and is unstable where
    they nearly cancel."""
    patches = self._process_input(x)
    position = self.encoder.pos_embedding
    patches = add_reported(self.lrp_position, patches, position[:, 1:], "position_embedding")
    first = (self.class_token + position[:, :1]).expand(patches.shape[0], -1, -1)
    tokens = torch.cat([first, patches], dim=1)
    record_absorbed(tokens, "class_token", lambda relevance: relevance[:, :1])
    encoder = self.encoder
    x = encoder.ln(encoder.layers(encoder.dropout(tokens)))
    return self.heads(x[:, 0])


def vit_encoder_forward(self: vision_transformer.Encoder, input: torch.Tensor) -> torch.Tensor:
    """``Encoder.forward`` with ``input + pos_embedding`` through ``lrp_position`` (its share reported); inside a
    ``VisionTransformer`` its canonized forward does this part itself (see :func:`vit_forward`)."""
    x = add_reported(self.lrp_position, input, self.pos_embedding, "position_embedding")
    return self.ln(self.layers(self.dropout(x)))


def add_reported(sum_module: Sum, x: torch.Tensor, constant: torch.Tensor, name: str) -> torch.Tensor:
    """``x + constant`` through ``sum_module`` (proportional split); the constant's share is reported as ``name``."""
    terms = torch.stack(torch.broadcast_tensors(x, constant), dim=sum_module.dim)
    record_absorbed(terms, name, lambda relevance: relevance.select(sum_module.dim, 1))
    return sum_module(terms)


def vit_block_forward(self: vision_transformer.EncoderBlock, input: torch.Tensor) -> torch.Tensor:
    """``EncoderBlock.forward`` with both residual adds through zennit Sums (the attention is canonized by
    :mod:`explainers.canonizers._attention`)."""
    x = self.ln_1(input)
    x, _ = self.self_attention(x, x, x, need_weights=False)
    x = add(self.lrp_sum1, self.dropout(x), input)
    return add(self.lrp_sum2, x, self.mlp(self.ln_2(x)))


@register_canonizer(vision_transformer.VisionTransformer, vision_transformer.Encoder, vision_transformer.EncoderBlock)
class ViTCanonizer(ForwardCanonizer):
    """ViT :cite:p:`dosovitskiy2021image`: residual adds through Sums, the position embedding add through a Sum whose
    embedding share is reported, the class token's relevance reported (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(module: nn.Module) -> dict | None:
        if isinstance(module, vision_transformer.VisionTransformer):
            return {"forward": vit_forward.__get__(module), "lrp_position": term_sum()}
        if isinstance(module, vision_transformer.Encoder):
            return {"forward": vit_encoder_forward.__get__(module), "lrp_position": term_sum()}
        if isinstance(module, vision_transformer.EncoderBlock):
            return {"forward": vit_block_forward.__get__(module), "lrp_sum1": term_sum(), "lrp_sum2": term_sum()}
        return None


# -- Swin ------------------------------------------------------------------------------------------------------------
def _shift_mask(x: torch.Tensor, size: tuple[int, int], window: list[int], shift: list[int]) -> torch.Tensor:
    """The additive attention mask of shifted windows, (num_windows, N, N), as in ``shifted_window_attention``."""
    pad_h, pad_w = size
    mask = x.new_zeros((pad_h, pad_w))
    h_slices = ((0, -window[0]), (-window[0], -shift[0]), (-shift[0], None))
    w_slices = ((0, -window[1]), (-window[1], -shift[1]), (-shift[1], None))
    count = 0
    for h in h_slices:
        for w in w_slices:
            mask[h[0] : h[1], w[0] : w[1]] = count
            count += 1
    mask = mask.view(pad_h // window[0], window[0], pad_w // window[1], window[1])
    mask = mask.permute(0, 2, 1, 3).reshape(-1, window[0] * window[1])
    mask = mask.unsqueeze(1) - mask.unsqueeze(2)
    return mask.masked_fill(mask != 0, (-100.0)).masked_fill(mask == 0, 0.0)


def window_attention_forward(self: swin_transformer.ShiftedWindowAttention, input: torch.Tensor) -> torch.Tensor:
    """``shifted_window_attention`` (v1 and v2) with the value path through ``self.qkv``, ``lrp_attention`` and
    ``self.proj``; the attention weights are computed as in torchvision and held constant."""
    logit_scale = self.logit_scale if isinstance(self, swin_transformer.ShiftedWindowAttentionV2) else None
    window, heads = self.window_size, self.num_heads
    batch, height, width, channels = input.shape
    pad_r = (window[1] - width % window[1]) % window[1]
    pad_b = (window[0] - height % window[0]) % window[0]
    x = F.pad(input, (0, 0, 0, pad_r, 0, pad_b))
    _, pad_h, pad_w, _ = x.shape
    shift = [0 if window[0] >= pad_h else self.shift_size[0], 0 if window[1] >= pad_w else self.shift_size[1]]
    if sum(shift) > 0:
        x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))

    num_windows = (pad_h // window[0]) * (pad_w // window[1])
    x = x.view(batch, pad_h // window[0], window[0], pad_w // window[1], window[1], channels)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch * num_windows, window[0] * window[1], channels)
    tokens, head_dim = x.size(1), channels // heads

    qkv = self.qkv(x).reshape(x.size(0), tokens, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    if logit_scale is not None:
        if self.qkv.bias is not None:  # v2 uses no key bias: torchvision zeroes it in every forward
            k = k - self.qkv.bias[channels : 2 * channels].view(heads, 1, head_dim)
        scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        scores = scores * torch.clamp(logit_scale, max=math.log(100.0)).exp()
    else:
        scores = (q * head_dim**-0.5).matmul(k.transpose(-2, -1))
    scores = scores + self.get_relative_position_bias()
    if sum(shift) > 0:
        scores = scores.view(batch, num_windows, heads, tokens, tokens)
        scores = scores + _shift_mask(x, (pad_h, pad_w), window, shift).unsqueeze(1).unsqueeze(0)
        scores = scores.view(-1, heads, tokens, tokens)
    weights = F.dropout(F.softmax(scores, dim=-1), p=self.attention_dropout, training=self.training)

    x = attend(self.lrp_attention, weights, v).transpose(1, 2).reshape(x.size(0), tokens, channels)
    x = F.dropout(self.proj(x), p=self.dropout, training=self.training)

    x = x.view(batch, pad_h // window[0], pad_w // window[1], window[0], window[1], channels)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, pad_h, pad_w, channels)
    if sum(shift) > 0:
        x = torch.roll(x, shifts=(shift[0], shift[1]), dims=(1, 2))
    return x[:, :height, :width, :].contiguous()


def patch_merging_forward(
    self: swin_transformer.PatchMerging | swin_transformer.PatchMergingV2, x: torch.Tensor
) -> torch.Tensor:
    """``PatchMerging(V2).forward`` reporting the relevance that reaches the zero padding of an odd-sized map.

    In v1 the LayerNorm follows the padding; its rule gives the zero entries no relevance (it is proportional to the
    input), so the report is zero unless a rule gives zeros relevance.
    """
    height, width = x.shape[-3], x.shape[-2]
    padded = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
    if padded.shape != x.shape:
        outside = torch.ones_like(padded[..., :1])
        outside[..., :height, :width, :] = 0
        record_absorbed(padded, "padding", lambda relevance: relevance * outside)
    merged = torch.cat(
        [
            padded[..., 0::2, 0::2, :],
            padded[..., 1::2, 0::2, :],
            padded[..., 0::2, 1::2, :],
            padded[..., 1::2, 1::2, :],
        ],
        dim=-1,
    )
    if isinstance(self, swin_transformer.PatchMergingV2):
        return self.norm(self.reduction(merged))
    return self.reduction(self.norm(merged))


def swin_block_forward(self: swin_transformer.SwinTransformerBlock, x: torch.Tensor) -> torch.Tensor:
    """``SwinTransformerBlock.forward`` (v1: norm before, v2: norm after the attention and the MLP) with both residual
    adds through zennit Sums."""
    if isinstance(self, swin_transformer.SwinTransformerBlockV2):
        x = add(self.lrp_sum1, x, self.stochastic_depth(self.norm1(self.attn(x))))
        return add(self.lrp_sum2, x, self.stochastic_depth(self.norm2(self.mlp(x))))
    x = add(self.lrp_sum1, x, self.stochastic_depth(self.attn(self.norm1(x))))
    return add(self.lrp_sum2, x, self.stochastic_depth(self.mlp(self.norm2(x))))


@register_canonizer(
    swin_transformer.SwinTransformerBlock,
    swin_transformer.ShiftedWindowAttention,
    swin_transformer.PatchMerging,
    swin_transformer.PatchMergingV2,
)
class SwinCanonizer(ForwardCanonizer):
    """Swin :cite:p:`liu2021swin` and Swin v2 :cite:p:`liu2022swin`: shifted-window attention with the weights held
    constant and the value path through the hooked ``qkv`` / ``proj`` modules, residual adds through Sums. Patch
    merging (padding, strided slices, concatenation, LayerNorm, a linear reduction) keeps its arithmetic; on an
    odd-sized map the relevance its padding absorbs is reported (``"padding"``)."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(module: nn.Module) -> dict | None:
        if isinstance(module, swin_transformer.ShiftedWindowAttention):
            head_dim = module.qkv.in_features // module.num_heads
            return {"forward": window_attention_forward.__get__(module), "lrp_attention": AttentionValues(head_dim)}
        if isinstance(module, swin_transformer.SwinTransformerBlock):
            return {"forward": swin_block_forward.__get__(module), "lrp_sum1": term_sum(), "lrp_sum2": term_sum()}
        if isinstance(module, (swin_transformer.PatchMerging, swin_transformer.PatchMergingV2)):
            return {"forward": patch_merging_forward.__get__(module)}
        return None


# -- MaxViT ----------------------------------------------------------------------------------------------------------
def mbconv_forward(self: maxvit.MBConv, x: torch.Tensor) -> torch.Tensor:
    """MaxViT's ``MBConv.forward`` with ``proj(x) + layers(x)`` through a Sum (the squeeze-and-excitation inside has
    its own canonizer, :class:`explainers.canonizers._cnn.SqueezeExcitationCanonizer`)."""
    return add(self.lrp_sum, self.proj(x), self.stochastic_depth(self.layers(x)))


def partition_attention_forward(self: maxvit.PartitionAttentionLayer, x: torch.Tensor) -> torch.Tensor:
    """``PartitionAttentionLayer.forward`` (window or grid partition) with both residual adds through Sums."""
    grid_h, grid_w = self.grid_size[0] // self.p, self.grid_size[1] // self.p
    x = self.partition_swap(self.partition_op(x, self.p))
    x = add(self.lrp_sum1, x, self.stochastic_dropout(self.attn_layer(x)))
    x = add(self.lrp_sum2, x, self.stochastic_dropout(self.mlp_layer(x)))
    return self.departition_op(self.departition_swap(x), self.p, grid_h, grid_w)


def relative_attention_forward(self: maxvit.RelativePositionalMultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """``RelativePositionalMultiHeadAttention.forward`` with the value path through ``to_qkv``, ``lrp_attention``
    and ``merge``; the attention weights (with the relative position bias) are held constant."""
    batch, groups, size, dim = x.shape
    q, k, v = (
        part.reshape(batch, groups, size, self.n_heads, self.head_dim).permute(0, 1, 3, 2, 4)
        for part in torch.chunk(self.to_qkv(x), 3, dim=-1)
    )
    scores = q @ (k * self.scale_factor).transpose(-2, -1) + self.get_relative_positional_bias()
    out = attend(self.lrp_attention, F.softmax(scores, dim=-1), v)
    return self.merge(out.permute(0, 1, 3, 2, 4).reshape(batch, groups, size, dim))


@register_canonizer(
    maxvit.MBConv,
    maxvit.PartitionAttentionLayer,
    maxvit.RelativePositionalMultiHeadAttention,
    maxvit.WindowPartition,
    maxvit.WindowDepartition,
    maxvit.SwapAxes,
)
class MaxViTCanonizer(ForwardCanonizer):
    """MaxViT :cite:p:`tu2022maxvit`: the MBConv residual (with its projection shortcut) and the partition attention
    layers' residuals through Sums, block and grid attention with the weights held constant.

    ``WindowPartition``, ``WindowDepartition`` and ``SwapAxes`` are re-indexings (reshape / permute) whose gradient
    passes relevance on unchanged; they are listed so that :func:`explainers.check_supported` counts them covered.
    The classifier head (average pooling, LayerNorm, Linear, Tanh, Linear) has rules of its own (Norm, the LayerNorm
    rule, epsilon, identity, epsilon).
    """

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(module: nn.Module) -> dict | None:
        if isinstance(module, maxvit.MBConv):
            return {"forward": mbconv_forward.__get__(module), "lrp_sum": term_sum()}
        if isinstance(module, maxvit.PartitionAttentionLayer):
            forward = partition_attention_forward.__get__(module)
            return {"forward": forward, "lrp_sum1": term_sum(), "lrp_sum2": term_sum()}
        if isinstance(module, maxvit.RelativePositionalMultiHeadAttention):
            return {
                "forward": relative_attention_forward.__get__(module),
                "lrp_attention": AttentionValues(module.head_dim),
            }
        return None
