"""A configuration as JSON: written after a study, loaded back into a ready explainer."""
import json
from pathlib import Path
from typing import Any, Dict, Union

from torch import nn

from explainers import LRPBase

from ._provenance import jsonable
from ._space import variant_by_name

SKIPPED = ("model", "zennit_canonizers", "forward_arg_extractor", "additional_forward_arg_extractor", "layer",
           "n_classes", "zennit_composite")


def explainer_config(explainer: LRPBase) -> Dict[str, Any]:
    """The explainer's class and its JSON-serialisable parameters (rules, bounds; not the model)."""
    params = {name: jsonable(value) for name, value in explainer.parameters().items() if name not in SKIPPED}
    return {"explainer": type(explainer).__name__, "params": params}


def save_config(explainer: LRPBase, path: Union[str, Path], **extra: Any) -> Path:
    path = Path(path)
    path.write_text(json.dumps({**explainer_config(explainer), **extra}, indent=2))
    return path


def load_explainer(path: Union[str, Path], model: nn.Module, **kwargs: Any) -> LRPBase:
    """The explainer a saved configuration describes, for ``model`` (``kwargs`` add e.g. canonizers)."""
    config = json.loads(Path(path).read_text())
    cls = variant_by_name(config["explainer"])
    params = dict(config["params"])
    for bound in ("low", "high"):  # per-channel bounds were saved as lists
        if isinstance(params.get(bound), list):
            import torch
            params[bound] = torch.tensor(params[bound]).reshape(1, -1, 1, 1)
    return cls(model, **params, **kwargs)
