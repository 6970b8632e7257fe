"""Your own model by import path: ``package.module:callable`` or ``path/to/file.py:callable``.

The callable (a function or an ``nn.Module`` class) returns the model; it may take ``num_classes=``. Its
weights are a state dict loaded strictly with ``weights_only=True`` (no code in a checkpoint runs), or
the callable's own initialisation, drawn from a fixed seed so that the same command builds the same model.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from registry import first_line

from ._base import Preset
from ._errors import ModelImportError, WeightsError
from .loading._preprocessing import Preprocessing, load_images
from .loading._weights import apply_state_dict, head_size, read_state_dict

ModelFactory = Callable[..., nn.Module]


def is_import_path(spec: str) -> bool:
    """Whether ``--model`` names an import path (``module:callable`` or ``file.py:callable``)."""
    return ":" in spec


def load_factory(spec: str) -> ModelFactory:
    """Import ``module:callable`` (or ``file.py:callable``) and return the callable, or raise ModelImportError
    with one line that says what is missing."""
    target, _, name = spec.rpartition(":")
    if not target or not name:
        raise ModelImportError(
            f"--model {spec!r} is not an import path; write package.module:callable or file.py:callable"
        )
    module = _module_from_file(Path(target)) if _is_file(target) else _module(target)
    found: object = module
    for part in name.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise ModelImportError(f"{target} has no {name!r}; callables defined there: {_callables(module)}")
    if not callable(found):
        raise ModelImportError(f"{spec} is a {type(found).__name__}, not a callable that returns a model")
    return found


def _callables(module: ModuleType, shown: int = 8) -> str:
    names = sorted(
        k
        for k, v in vars(module).items()
        if callable(v) and not k.startswith("_") and getattr(v, "__module__", None) == module.__name__
    )
    return (", ".join(names[:shown]) + (f", ... {len(names) - shown} more" if len(names) > shown else "")) or "none"


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or os.sep in target


def _module(name: str) -> ModuleType:
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())  # `lrp-tuner` (unlike `python -m tuner`) does not look in the current folder
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise ModelImportError(
                f"no module named {name!r}; run from the folder that holds it, add that folder to PYTHONPATH, "
                "or pass path/to/file.py:callable"
            ) from exc
        raise ModelImportError(f"importing {name} failed (ModuleNotFoundError: {first_line(exc)})") from exc
    except Exception as exc:
        raise ModelImportError(f"importing {name} failed ({type(exc).__name__}: {first_line(exc)})") from exc


def _module_from_file(path: Path) -> ModuleType:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise ModelImportError(f"model file {path} not found; pass --model path/to/file.py:callable")
    name = f"lrp_tuner_model_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelImportError(f"cannot import {path}; is it a Python file?")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))  # the file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ModelImportError(f"importing {path} failed ({type(exc).__name__}: {first_line(exc)})") from exc
    return module


def takes_num_classes(factory: ModelFactory) -> bool:
    """Whether the callable accepts a ``num_classes`` keyword (or any keyword)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return True
    return any(p.name == "num_classes" or p.kind is p.VAR_KEYWORD for p in parameters)


def build_model(
    factory: ModelFactory, spec: str, weights: str | None, device: torch.device, *, num_classes: int | None = None
) -> nn.Module:
    """Call ``factory`` (with ``num_classes`` when given, seeded 0) and load ``weights``: a state-dict path, or
    None / ``none`` for the callable's own initialisation. A state dict with another head sets ``num_classes``
    when the callable takes it."""
    if weights is not None and weights.upper() == "DEFAULT":
        raise WeightsError(
            f"--weights DEFAULT names torchvision's weights; for {spec} pass --weights PATH (a state dict) or none"
        )
    model = _call(factory, spec, num_classes)
    if weights is None or weights.lower() == "none":
        return model
    state_dict = read_state_dict(weights)
    if num_classes is None and takes_num_classes(factory):
        found = head_size(model, state_dict)
        if found is not None:
            model = _call(factory, spec, found)
    return apply_state_dict(model, state_dict, weights)


def _call(factory: ModelFactory, spec: str, num_classes: int | None) -> nn.Module:
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = factory(**kwargs)
    except Exception as exc:
        call = f"{spec}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
        raise ModelImportError(f"{call} failed ({type(exc).__name__}: {first_line(exc)})") from exc
    if not isinstance(model, nn.Module):
        raise ModelImportError(f"{spec} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def import_path_preset(
    spec: str, defaults: dict, *, preprocessing: Preprocessing | None = None, num_classes: int | None = None
) -> Preset:
    """The preset of an import path: the callable is found now (a missing one fails before any work); the data
    are images preprocessed by ``preprocessing`` (default: ImageNet's, 224 pixels)."""
    factory = load_factory(spec)
    if num_classes is not None and not takes_num_classes(factory):
        raise ModelImportError(f"{spec} takes no num_classes argument; drop --num-classes or add it to the callable")
    preprocessing = preprocessing or Preprocessing()
    low, high = preprocessing.bounds()
    return Preset(
        name=spec,
        description=f"{spec} on images ({preprocessing.describe()})",
        model=partial(build_model, factory, spec, num_classes=num_classes),
        data=partial(load_images, preprocessing),
        low=low,
        high=high,
        defaults=defaults,
    )
