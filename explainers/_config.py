"""An explainer's configuration as JSON: written after a study, loaded back into a ready explainer.

Loading needs only this package: the class is looked up in the explainers' own registry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._base import COMMON_OPTIONS, LRPBase
from ._registry import get_explainer

# not part of a configuration: they belong to the model and the caller (extractors, layers, canonizers); the
# relevance seed is saved, since it decides the sign and scale of every map
_NOT_SAVED = frozenset({"zennit_composite", *COMMON_OPTIONS}) - {"seed"}


def explainer_config(explainer: LRPBase) -> dict[str, Any]:
    """The explainer's class and its JSON-serialisable parameters (rules, bounds; not the model)."""
    params = {name: value for name, value in explainer.settings().items() if name not in _NOT_SAVED}
    return {"explainer": type(explainer).__name__, "params": params}


def save_config(explainer: LRPBase, path: str | Path, **extra: Any) -> Path:
    """Write :func:`explainer_config` and ``extra`` (the score, the study) as JSON to ``path``."""
    path = Path(path)
    path.write_text(json.dumps({**explainer_config(explainer), **extra}, indent=2))
    return path


def load_explainer(path: str | Path, model: nn.Module, **kwargs: Any) -> LRPBase:
    """The explainer a saved configuration describes, for ``model`` (``kwargs`` add e.g. canonizers)."""
    config = json.loads(Path(path).read_text())
    cls = get_explainer(config["explainer"])
    params = dict(config["params"])
    for bound in ("low", "high"):  # per-channel bounds were saved as lists
        if isinstance(params.get(bound), list):
            params[bound] = torch.tensor(params[bound]).reshape(1, -1, 1, 1)
    return cls(model, **params, **kwargs)
