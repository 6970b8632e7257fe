"""Reading state dicts from local files and matching them to a model, with clear errors."""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from registry import first_line

from .._errors import WeightsError


def cache_dir() -> Path:
    """Return the lrp-tuner cache folder: $LRP_TUNER_CACHE, $XDG_CACHE_HOME/lrp-tuner or ~/.cache/lrp-tuner."""
    if os.environ.get("LRP_TUNER_CACHE"):
        return Path(os.environ["LRP_TUNER_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "lrp-tuner"
    return Path.home() / ".cache" / "lrp-tuner"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict (or a checkpoint with a 'state_dict' key) with `weights_only=True`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"weights file not found: {path}; pass --weights DEFAULT, --weights none, or a path to a state dict"
        )
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses anyway
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a bad file
        raise WeightsError(
            f"cannot read weights file {path} ({_reason(exc)}); pass a torch state dict saved with torch.save"
        ) from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise WeightsError(f"weights file {path} does not hold a state dict (a dict of tensors)")
    if loaded and all(key.startswith("module.") for key in loaded):  # saved from DataParallel
        loaded = {key[len("module.") :]: value for key, value in loaded.items()}
    return loaded


def _reason(exc: BaseException) -> str:
    """Why torch could not read a file, without torch's advice to load it unsafely (weights_only=False runs
    whatever code the file holds)."""
    if "weights_only" in str(exc) or isinstance(exc, pickle.UnpicklingError):
        return "corrupt, or it holds objects other than tensors"
    return first_line(exc)


def apply_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str | Path) -> nn.Module:
    """Load `state_dict` into `model` strictly, or raise WeightsError listing, in one line, the missing,
    unexpected and mismatched-shape keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(key for key in set(expected) & set(state_dict) if expected[key].shape != state_dict[key].shape)
    if missing or unexpected or mismatched:
        shapes = [f"{k} {list(state_dict[k].shape)} vs {list(expected[k].shape)}" for k in mismatched]
        problems = [
            f"{len(keys)} {kind}" + (f" ({_listed(keys)})" if keys else "")
            for kind, keys in (("missing", missing), ("unexpected", unexpected), ("mismatched-shape", shapes))
        ]
        raise WeightsError(
            f"weights file {source} does not match {type(model).__name__}: {'; '.join(problems)} keys; "
            "pass the weights saved from this architecture, or --weights none"
        )
    model.load_state_dict(state_dict)
    return model


def _listed(keys: list[str], shown: int = 4) -> str:
    more = f", ... {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def head_size(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> int | None:
    """The number of classes of a state dict saved from ``model``'s architecture with another head (the rows
    of its last weight), or None when its keys or any shape outside that head differ (the load then lists them)."""
    expected = model.state_dict()
    if set(expected) != set(state_dict):
        return None
    differing = [key for key in expected if expected[key].shape != state_dict[key].shape]
    head = [key for key in expected if key.endswith("weight")][-1:]
    module = head[0].rsplit(".", 1)[0] if head else None
    if not differing or any(key.rsplit(".", 1)[0] != module for key in differing):
        return None
    return int(state_dict[head[0]].shape[0])


def save_atomically(obj: object, path: Path) -> None:
    """Write `obj` with torch.save to a temp file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
