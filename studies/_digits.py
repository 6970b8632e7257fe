"""The embedded default preset: a small torchvision ResNet trained on scikit-learn's digits at first use."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, ResNet

from ._base import Preset, bounds_from_normalization
from ._images import load_image_folder
from ._weights import apply_state_dict, cache_dir, read_state_dict, save_atomically

try:
    import fcntl
except ImportError:  # Windows: no lock; the atomic rename still keeps the cache whole
    fcntl = None

# Everything that changes the trained weights; its hash names the cache file.
RECIPE = {
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


def cache_path() -> Path:
    """Return where the trained digits model is cached (the name holds the recipe's hash)."""
    return cache_dir() / f"digits-resnet-{RECIPE_HASH}.pt"


def build_digits_model() -> ResNet:
    """Return an untrained torchvision ResNet of BasicBlocks [1, 1, 1, 1] for 1x16x16 inputs and 10 classes."""
    widths = RECIPE["widths"]
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


def train_digits_model() -> tuple[ResNet, dict]:
    """Train the digits ResNet with the fixed recipe; return it and {accuracy, train_seconds}."""
    x_train, y_train, x_test, y_test = digits_split()
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RECIPE["seed"])
        model = build_digits_model()
        batch = RECIPE["batch_size"]
        steps_per_epoch = -(-len(y_train) // batch)
        optimizer = torch.optim.AdamW(model.parameters(), lr=RECIPE["max_lr"], weight_decay=RECIPE["weight_decay"])
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=RECIPE["max_lr"], total_steps=RECIPE["epochs"] * steps_per_epoch
        )
        model.train()
        for _ in range(RECIPE["epochs"]):
            for index in torch.randperm(len(y_train)).split(batch):
                optimizer.zero_grad()
                F.cross_entropy(model(x_train[index]), y_train[index]).backward()
                optimizer.step()
                schedule.step()
    report = {"accuracy": accuracy(model, x_test, y_test), "train_seconds": time.perf_counter() - start}
    return model.eval(), report


def _read_cache(path: Path, warn: bool) -> tuple[ResNet, dict] | None:
    """Return the cached model and its report, or None when the file is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        model = apply_state_dict(build_digits_model(), stored["state_dict"], path).eval()
        report = {"accuracy": stored["accuracy"], "train_seconds": stored["train_seconds"]}
    except Exception as exc:  # a corrupt or foreign cache file is retrained, never a crash
        if warn:
            print(f"lrp-tuner: the cached digits model {path} is unreadable ({type(exc).__name__}); retraining it",
                  file=sys.stderr)
        return None
    return model, {**report, "path": path, "trained": False}


@contextmanager
def _training_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside `path`, so processes starting at once train only once (POSIX)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_suffix(".lock"), "w")
    except OSError:  # an unwritable cache folder: train unlocked; saving reports the problem
        yield
        return
    with handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def cached_digits_model() -> tuple[ResNet, dict]:
    """Load the trained digits model from the cache, or train and cache it; the report says which."""
    path = cache_path()
    cached = _read_cache(path, warn=False)
    if cached is not None:
        return cached
    with _training_lock(path):
        cached = _read_cache(path, warn=True)  # another process may have trained it meanwhile
        if cached is not None:
            return cached
        model, report = train_digits_model()
        print(f"lrp-tuner: trained the digits model in {report['train_seconds']:.1f} s (held-out accuracy "
              f"{report['accuracy']:.3f}); caching it at {path}", file=sys.stderr)
        try:
            save_atomically({"state_dict": model.state_dict(), **report}, path)
        except OSError as exc:
            print(f"lrp-tuner: cannot cache the digits model in {path.parent} ({exc}); "
                  "set LRP_TUNER_CACHE to a writable folder", file=sys.stderr)
    return model, {**report, "path": path, "trained": True}


def load_digits_model(weights: str | None, device: torch.device) -> nn.Module:
    """Return the digits ResNet: trained and cached (None/DEFAULT), random ("none"), or from a state dict PATH."""
    spec = "DEFAULT" if weights is None else str(weights)
    if spec.lower() == "none":
        return build_digits_model()
    if spec.upper() == "DEFAULT":
        return cached_digits_model()[0]
    return apply_state_dict(build_digits_model(), read_state_dict(spec), spec)


def _image_to_pixels(image: Image.Image) -> Tensor:
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
    return preprocess(pixels[None, None])[0]


def held_out_digits() -> tuple[Tensor, Tensor]:
    """Return the preprocessed held-out split, cached beside the model: every worker process of a study
    loads it, and reading the cache is cheaper than importing scikit-learn (about 0.9 s)."""
    path = cache_dir() / f"digits-held-out-{RECIPE_HASH}.pt"
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        inputs, labels = stored["inputs"], stored["labels"]
        size = RECIPE["size"]
        if inputs.dtype == torch.float32 and inputs.shape[1:] == (1, size, size) and labels.shape == (len(inputs),):
            return inputs, labels.long()
    except Exception:  # absent, corrupt or foreign: rebuilt from scikit-learn's digits below
        pass
    _, _, inputs, labels = digits_split()
    try:
        save_atomically({"inputs": inputs, "labels": labels}, path)
    except OSError:  # an unwritable cache folder only costs the import next time
        pass
    return inputs, labels


def load_digits_data(data_dir: Path | None, n_samples: int | None) -> tuple[Tensor, Tensor | None]:
    """Return the held-out digits (never trained on) with labels, or a grayscale image folder, preprocessed."""
    if data_dir is not None:
        return load_image_folder(data_dir, _image_to_pixels, n_samples, mode="L")
    inputs, labels = held_out_digits()
    return inputs[:n_samples], labels[:n_samples]


_LOW, _HIGH = bounds_from_normalization([RECIPE["mean"]], [RECIPE["std"]])

DIGITS = Preset(
    name="digits",
    description="small torchvision ResNet (BasicBlocks [1,1,1,1]) trained on scikit-learn's 8x8 digits at 16x16",
    model=load_digits_model,
    data=load_digits_data,
    low=_LOW,
    high=_HIGH,
    defaults={"n_samples": 64, "n_trials": 60, "batch_size": 16},
)
