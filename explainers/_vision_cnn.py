"""Canonizers for torchvision's convolutional blocks beyond ResNet and VGG (residual adds, gates, layer scale)."""
from __future__ import annotations
