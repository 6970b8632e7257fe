"""A transformer's dense layers in groups: the attention projections and the MLP of its blocks, each split by depth
into first, middle and last blocks (the groups AttnLRP's users give a gamma each, picked by eye over a grid in LXT's
documentation; here a tunable each). With fewer than three blocks the depths merge: two blocks have a first and a
last, one block a single group."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

#: a dense layer of a block belongs to the attention where the innermost part of its name (within the block) that
#: holds one of these words holds an attention word (``window_attention.mlp_layer.1`` is MLP), else to the MLP
ATTENTION_NAMES = ("attn", "attention")
MLP_NAMES = ("mlp",)


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's repeated blocks, in order: the type of its longest ``nn.ModuleList`` (or ``nn.Sequential``, as
    torchvision's encoder layers) of modules of one type that hold dense layers, and every module of that type (the
    blocks of all of a Swin's stages); empty without one."""
    lists = [
        module
        for module in model.modules()
        if isinstance(module, (nn.ModuleList, nn.Sequential))
        and len(module)
        and len({type(b) for b in module}) == 1
        and dense_layers(next(iter(module)))  # blocks hold dense layers (not a stem of convolutions)
    ]
    if not lists:
        return []
    block = type(next(iter(max(lists, key=len))))
    return [module for module in model.modules() if type(module) is block]


def depth_names(n_blocks: int) -> list[str]:
    """The depth group of each block: thirds as even as possible (first, middle, last); merged below three."""
    if n_blocks <= 1:
        return ["all"] * n_blocks
    if n_blocks == 2:
        return ["first", "last"]
    third = n_blocks // 3
    extra = n_blocks - 3 * third  # the middle takes what does not divide evenly
    return ["first"] * third + ["middle"] * (third + extra) + ["last"] * third


def dense_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The dense layers of ``module`` with their names: ``nn.Linear``, transformers' ``Conv1D`` (GPT-2), and the
    packed input projection of ``nn.MultiheadAttention`` (torchvision's ViT; its output projection is a Linear)."""
    return [
        (name, layer)
        for name, layer in module.named_modules()
        if isinstance(layer, (nn.Linear, nn.MultiheadAttention)) or type(layer).__name__ == "Conv1D"
    ]


def dense_weight(layer: nn.Module) -> torch.Tensor:
    """The weight of a dense layer (of a multi-head attention, its packed input projection)."""
    weight = layer.in_proj_weight if isinstance(layer, nn.MultiheadAttention) else layer.weight
    return cast(torch.Tensor, weight)


def layer_groups(model: nn.Module) -> dict[str, list[nn.Module]]:
    """Group name (``attention_first``, ``mlp_last``, ...) -> the dense layers in it, in the order of the blocks;
    empty groups left out. Dense layers outside the blocks (embedding projections, the head) are in no group."""
    blocks = transformer_blocks(model)
    groups: dict[str, list[nn.Module]] = {}
    for block, depth in zip(blocks, depth_names(len(blocks))):
        for name, layer in dense_layers(block):
            part = _part(name)
            groups.setdefault(f"{part}_{depth}", []).append(layer)
    return groups


def _part(name: str) -> str:
    """``attention`` or ``mlp``: the innermost part of a layer's name that says which (MLP where none does)."""
    for piece in reversed(name.lower().split(".")):
        if any(word in piece for word in MLP_NAMES):
            return "mlp"
        if any(word in piece for word in ATTENTION_NAMES):
            return "attention"
    return "mlp"
