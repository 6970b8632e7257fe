"""Canonizers for torchvision's vision transformers (ViT, Swin, MaxViT)."""
from __future__ import annotations
