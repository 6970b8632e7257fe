"""``ImageClassifier``: a Hugging Face image classifier as a module from pixels to class logits, the form a study and
its metrics call (``model(x)`` returns a tensor)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._hf import check_family, image_logits


class ImageClassifier(nn.Module):
    """``model`` (``...ForImageClassification``) on ``pixel_values`` (B, C, H, W): returns its logits (B, classes)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        check_family(model)
        self.model = model
        self.train(model.training)

    @property
    def n_classes(self) -> int:
        config: Any = self.model.config
        return int(config.num_labels)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return image_logits(self.model, pixel_values)
