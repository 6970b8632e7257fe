"""The digits model: a small torchvision ResNet, its preprocessing, the fixed data split and the training recipe."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, ResNet

# Everything that changes the trained weights; its hash names the cache file.
RECIPE: dict[str, Any] = {
    "version": 1,
    "size": 16,
    "widths": [16, 32, 64, 128],
    "mean": 0.305,
    "std": 0.376,
    "test_fraction": 0.25,
    "seed": 0,
    "epochs": 10,
    "batch_size": 64,
    "max_lr": 0.01,
    "weight_decay": 1e-4,
}
RECIPE_HASH = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:12]

Model = TypeVar("Model", bound=nn.Module)


def build_digits_model(widths: list[int] | None = None) -> ResNet:
    """Return an untrained torchvision ResNet of BasicBlocks [1, 1, 1, 1] for one-channel inputs and 10 classes
    (the adaptive pooling takes any size: 16x16 digits, 32x32 evidence canvases); `widths` default to the recipe's."""
    widths = RECIPE["widths"] if widths is None else widths
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)
    model.conv1 = nn.Conv2d(1, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
    model.bn1 = nn.BatchNorm2d(widths[0])
    model.maxpool = nn.Identity()
    model.inplanes = widths[0]
    model.layer1 = model._make_layer(BasicBlock, widths[0], 1)
    model.layer2 = model._make_layer(BasicBlock, widths[1], 1, stride=2)
    model.layer3 = model._make_layer(BasicBlock, widths[2], 1, stride=2)
    model.layer4 = model._make_layer(BasicBlock, widths[3], 1, stride=2)
    model.fc = nn.Linear(widths[3], 10)
    return model


def preprocess(pixels: Tensor) -> Tensor:
    """Map (N, 1, h, w) pixels in [0, 1] to normalised (N, 1, 16, 16) inputs (bilinear stays in [0, 1])."""
    size = RECIPE["size"]
    resized = F.interpolate(pixels.float(), size=(size, size), mode="bilinear", align_corners=False)
    return (resized - RECIPE["mean"]) / RECIPE["std"]


def digits_split() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Return (train inputs, train labels, held-out inputs, held-out labels), preprocessed, fixed split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.from_numpy(np.random.RandomState(RECIPE["seed"]).permutation(len(labels)))
    n_test = int(len(labels) * RECIPE["test_fraction"])
    test, train = order[:n_test], order[n_test:]
    return preprocess(pixels[train]), labels[train], preprocess(pixels[test]), labels[test]


@torch.no_grad()
def accuracy(model: nn.Module, inputs: Tensor, labels: Tensor) -> float:
    """Return the fraction of `inputs` that `model` (in eval mode) classifies as `labels`."""
    model.eval()
    return (model(inputs).argmax(dim=1) == labels).float().mean().item()


def train_classifier(
    build: Callable[[], Model], inputs: Tensor, labels: Tensor, recipe: dict[str, Any], seed: int
) -> Model:
    """Train ``build()`` on (inputs, labels) with AdamW under a one-cycle schedule, `recipe`'s epochs, batch_size,
    max_lr and weight_decay; torch's generator is seeded with `seed` (and restored after): the same call gives the
    same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
        batch = recipe["batch_size"]
        steps_per_epoch = -(-len(labels) // batch)
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["max_lr"], weight_decay=recipe["weight_decay"])
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe["max_lr"], total_steps=recipe["epochs"] * steps_per_epoch
        )
        model.train()
        for _ in range(recipe["epochs"]):
            for index in torch.randperm(len(labels)).split(batch):
                optimizer.zero_grad()
                F.cross_entropy(model(inputs[index]), labels[index]).backward()
                optimizer.step()
                schedule.step()
    return model.eval()


def train_digits_model() -> tuple[ResNet, dict]:
    """Train the digits ResNet with the fixed recipe; return it and {accuracy, train_seconds}."""
    x_train, y_train, x_test, y_test = digits_split()
    start = time.perf_counter()
    model = train_classifier(build_digits_model, x_train, y_train, RECIPE, RECIPE["seed"])
    report = {"accuracy": accuracy(model, x_test, y_test), "train_seconds": time.perf_counter() - start}
    return model, report
