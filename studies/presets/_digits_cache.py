"""The trained digits weights and held-out split, cached on disk: trained once per recipe, under a lock so that
processes starting together train only once, and written atomically so that the cache is never half a file."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor
from torchvision.models.resnet import ResNet

from ..loading._weights import apply_state_dict, cache_dir, save_atomically
from ._digits_model import RECIPE, RECIPE_HASH, build_digits_model, digits_split, train_digits_model

try:
    import fcntl
except ImportError:  # Windows: no lock; the atomic rename still keeps the cache whole
    fcntl = None  # type: ignore[assignment]


def cache_path() -> Path:
    """Return where the trained digits model is cached (the name holds the recipe's hash)."""
    return cache_dir() / f"digits-resnet-{RECIPE_HASH}.pt"


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
            print(
                f"lrp-tuner: the cached digits model {path} is unreadable ({type(exc).__name__}); retraining it",
                file=sys.stderr,
            )
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
        print(
            f"lrp-tuner: trained the digits model in {report['train_seconds']:.1f} s (held-out accuracy "
            f"{report['accuracy']:.3f}); caching it at {path}",
            file=sys.stderr,
        )
        try:
            save_atomically({"state_dict": model.state_dict(), **report}, path)
        except OSError as exc:
            print(
                f"lrp-tuner: cannot cache the digits model in {path.parent} ({exc}); "
                "set LRP_TUNER_CACHE to a writable folder",
                file=sys.stderr,
            )
    return model, {**report, "path": path, "trained": True}


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
