"""Relevance absorbed by a model's constants during one attribution (ViT's class token and position embedding).

The explainer sets a dict for the attribution it runs; the canonizers that meet such constants add what they absorb
to it, so that the explainer can report what relevance sums to."""

from __future__ import annotations

from contextvars import ContextVar

import torch

#: during ``LRPBase.attribute``, the dict into which canonizers report relevance absorbed by model constants
#: (e.g. a ViT's class token and position embedding): name -> per-sample relevance, shape (B,)
ABSORBED: ContextVar[dict[str, torch.Tensor] | None] = ContextVar("absorbed_relevance", default=None)
