"""Trained embedded models and their held-out data, cached on disk: trained once per recipe, under a lock so that
processes starting together train only once, and written atomically so that the cache is never half a file.
Used by the digits and the evidence presets alike."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import torch
from torch import Tensor, nn

from ..loading._weights import apply_state_dict, read_state_dict, save_atomically

try:
    import fcntl
except ImportError:  # Windows: no lock; the atomic rename still keeps the cache whole
    fcntl = None  # type: ignore[assignment]

Model = TypeVar("Model", bound=nn.Module)


def _read_cache(path: Path, build: Callable[[], Model], what: str, warn: bool) -> tuple[Model, dict] | None:
    """Return the cached model and its report, or None when the file is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        model = apply_state_dict(build(), stored["state_dict"], path).eval()
        report = {"accuracy": stored["accuracy"], "train_seconds": stored["train_seconds"]}
    except Exception as exc:  # a corrupt or foreign cache file is retrained, never a crash
        if warn:
            print(
                f"lrp-tuner: the cached {what} model {path} is unreadable ({type(exc).__name__}); retraining it",
                file=sys.stderr,
            )
        return None
    return model, {**report, "path": path, "trained": False}  # type: ignore[return-value]


@contextmanager
def training_lock(path: Path) -> Iterator[None]:
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


def cached_model(
    path: Path, build: Callable[[], Model], train: Callable[[], tuple[Model, dict]], what: str
) -> tuple[Model, dict]:
    """Load the model cached at `path` (into ``build()``), or ``train()`` and cache it; the report (accuracy,
    train_seconds, path, trained) says which. `what` names the model in messages."""
    cached = _read_cache(path, build, what, warn=False)
    if cached is not None:
        return cached
    with training_lock(path):
        cached = _read_cache(path, build, what, warn=True)  # another process may have trained it meanwhile
        if cached is not None:
            return cached
        model, report = train()
        print(
            f"lrp-tuner: trained the {what} model in {report['train_seconds']:.1f} s (held-out accuracy "
            f"{report['accuracy']:.3f}); caching it at {path}",
            file=sys.stderr,
        )
        try:
            save_atomically({"state_dict": model.state_dict(), **report}, path)
        except OSError as exc:
            print(
                f"lrp-tuner: cannot cache the {what} model in {path.parent} ({exc}); "
                "set LRP_TUNER_CACHE to a writable folder",
                file=sys.stderr,
            )
    return model, {**report, "path": path, "trained": True}


def cached_tensors(
    path: Path, names: tuple[str, ...], make: Callable[[], tuple[Tensor, ...]], valid: Callable[..., bool]
) -> tuple[Tensor, ...]:
    """Return the tensors stored at `path` under `names` when ``valid(*tensors)``, else ``make()`` them and store
    them (an unwritable cache folder only costs making them again next time)."""
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        tensors = tuple(stored[name] for name in names)
        if valid(*tensors):
            return tensors
    except Exception:  # absent, corrupt or foreign: made again below
        pass
    tensors = make()
    try:
        save_atomically(dict(zip(names, tensors, strict=True)), path)
    except OSError:
        pass
    return tensors


def embedded_model(
    weights: str | None, build: Callable[[], nn.Module], cached: Callable[[], tuple[Model, dict]]
) -> nn.Module:
    """An embedded preset's model by ``weights``: trained and cached (None or DEFAULT, ``cached()``), random
    (``"none"``, ``build()``), or from a state dict PATH."""
    spec = "DEFAULT" if weights is None else str(weights)
    if spec.lower() == "none":
        return build()
    if spec.upper() == "DEFAULT":
        return cached()[0]
    return apply_state_dict(build(), read_state_dict(spec), spec)
