"""The fixed samples a study scores: (inputs, targets) or (inputs, targets, evidence masks) from tensors, a Dataset or
a DataLoader."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from ..search._policy import split_sizes
from ._checks import check_inputs, check_masks, check_targets

Data = (
    tuple[torch.Tensor, torch.Tensor | None]
    | tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]
    | torch.Tensor
    | Dataset
    | DataLoader
)


class Samples(NamedTuple):
    """The samples every trial scores, and the held-out ones scored only in the summary."""

    inputs: torch.Tensor
    targets: torch.Tensor
    holdout_inputs: torch.Tensor
    holdout_targets: torch.Tensor
    targets_from: str = "label"  # "label" (the data's) or "prediction" (the model's)
    #: where the evidence is, per sample (bool, one value per feature position), when the data knows it
    masks: torch.Tensor | None = None
    holdout_masks: torch.Tensor | None = None


def fixed_samples(
    data: Data,
    model: nn.Module,
    n_samples: int | None,
    seed: int,
    device: torch.device,
    batch_size: int = 64,
    n_holdout: int | None = None,
) -> Samples:
    """``n_samples`` samples drawn once with ``seed``, so every trial scores the same ones, and up to
    ``n_holdout`` (default: as many) other samples held out from tuning. ``n_samples=None`` splits the data
    half and half.

    Targets are the labels where ``data`` has them, else the model's predictions. Evidence masks (a third tensor,
    or a third item of each dataset sample) follow their samples, as bool (N, *feature positions).
    """
    length, fetch = _indexable(data)
    if length == 0:
        raise ValueError(
            "data must hold at least one sample: (inputs, targets) tensors, an inputs tensor "
            "shaped (N, ...), a torch Dataset or a DataLoader"
        )
    if n_samples is not None and n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    n_tune, n_held = split_sizes(length, n_samples, n_holdout)
    order = torch.randperm(length, generator=torch.Generator().manual_seed(seed))
    chosen, held_out = order[:n_tune].sort().values, order[n_tune : n_tune + n_held].sort().values
    inputs, targets, masks = fetch(torch.cat([chosen, held_out]))  # only the samples used are loaded
    if not torch.is_tensor(inputs) or inputs.ndim < 2:
        raise ValueError(
            "data must hold inputs shaped (N, ...): (inputs, targets) tensors, an inputs tensor, "
            "a torch Dataset or a DataLoader"
        )
    check_inputs(inputs)
    if masks is not None:
        masks = check_masks(masks, inputs).to(device)
    targets_from = "label" if targets is not None else "prediction"
    if targets is None:
        with torch.no_grad():
            targets = torch.cat([model(chunk.to(device)).argmax(1).cpu() for chunk in inputs.split(batch_size)])
    targets = check_targets(targets, len(inputs))
    inputs, targets = inputs.to(device), targets.to(device)
    tuned_masks, held_masks = (None, None) if masks is None else (masks[:n_tune], masks[n_tune:])
    return Samples(
        inputs[:n_tune], targets[:n_tune], inputs[n_tune:], targets[n_tune:], targets_from, tuned_masks, held_masks
    )


def _indexable(data: Data) -> tuple[int, Callable]:
    """The number of samples and a function that loads (inputs, targets or None, masks or None) at given indices."""
    if torch.is_tensor(data):
        return len(data), lambda index: (data[index], None, None)
    if isinstance(data, (tuple, list)) and len(data) in (2, 3) and torch.is_tensor(data[0]):
        inputs, targets = data[0], None if data[1] is None else torch.as_tensor(data[1])
        masks = torch.as_tensor(data[2]) if len(data) == 3 and data[2] is not None else None
        for name, values in (("targets", targets), ("masks", masks)):
            if values is not None and len(values) != len(inputs):
                raise ValueError(f"data has {len(inputs)} inputs but {len(values)} {name}")
        return len(inputs), lambda index: tuple(None if t is None else t[index] for t in (inputs, targets, masks))
    if isinstance(data, DataLoader):  # its samples in a fixed order (a shuffled loader would differ every run)
        return _indexable(data.dataset)
    if isinstance(data, Dataset) and hasattr(data, "__len__") and not isinstance(data, IterableDataset):
        return len(data), lambda index: _collate([data[i] for i in index.tolist()])
    if isinstance(data, IterableDataset):
        return _indexable(_collate(list(data)))
    raise TypeError(
        "data must be (inputs, targets), (inputs, targets, masks), an inputs tensor, a Dataset or a DataLoader, "
        f"got {type(data).__name__}"
    )


def _collate(items: list) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Stack dataset items (a tensor, or (input, label) or (input, label, mask) tuples) into inputs, labels or None
    and masks or None."""
    if not items:
        return torch.empty(0), None, None
    if torch.is_tensor(items[0]):
        return torch.stack(items), None, None
    inputs = torch.stack([torch.as_tensor(item[0]) for item in items])
    labels = torch.as_tensor([int(item[1]) for item in items]) if len(items[0]) > 1 else None
    masks = torch.stack([torch.as_tensor(item[2]) for item in items]) if len(items[0]) > 2 else None
    return inputs, labels, masks
