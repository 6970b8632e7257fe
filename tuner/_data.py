"""The fixed samples a study scores: (inputs, targets) from tensors, a Dataset or a DataLoader."""
from typing import NamedTuple, Optional, Tuple, Union

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

Data = Union[Tuple[torch.Tensor, torch.Tensor], torch.Tensor, Dataset, DataLoader]


class Samples(NamedTuple):
    """The samples every trial scores, and the held-out ones scored only in the summary."""

    inputs: torch.Tensor
    targets: torch.Tensor
    holdout_inputs: torch.Tensor
    holdout_targets: torch.Tensor


def fixed_samples(data: Data, model: nn.Module, n_samples: Optional[int], seed: int, device: torch.device,
                  batch_size: int = 64, n_holdout: Optional[int] = None) -> Samples:
    """``n_samples`` samples drawn once with ``seed``, so every trial scores the same ones, and up to
    ``n_holdout`` (default: as many) other samples held out from tuning.

    Targets are the labels where ``data`` has them, else the model's predictions.
    """
    inputs, targets = _materialise(data)
    if not torch.is_tensor(inputs) or inputs.ndim < 2 or len(inputs) == 0:
        raise ValueError("data must hold at least one sample: (inputs, targets) tensors, an inputs tensor "
                         "shaped (N, ...), a torch Dataset or a DataLoader")
    if targets is not None and len(targets) != len(inputs):
        raise ValueError(f"data has {len(inputs)} inputs but {len(targets)} targets")
    if n_samples is not None and n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    n_tune = len(inputs) if n_samples is None else min(n_samples, len(inputs))
    n_holdout = n_tune if n_holdout is None else n_holdout
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed))
    chosen = order[:n_tune].sort().values
    held_out = order[n_tune:n_tune + n_holdout].sort().values
    if targets is None:
        with torch.no_grad():
            targets = torch.cat([model(chunk.to(device)).argmax(1).cpu() for chunk in
                                 inputs[torch.cat([chosen, held_out])].split(batch_size)])
        targets_all = torch.empty(len(inputs), dtype=torch.long)
        targets_all[torch.cat([chosen, held_out])] = targets
        targets = targets_all
    targets = torch.as_tensor(targets).long()
    return Samples(inputs[chosen].to(device), targets[chosen].to(device),
                   inputs[held_out].to(device), targets[held_out].to(device))


def _materialise(data: Data):
    if torch.is_tensor(data):
        return data, None
    if isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0]):
        return data[0], None if data[1] is None else torch.as_tensor(data[1])
    if isinstance(data, Dataset):
        data = DataLoader(data, batch_size=64, shuffle=False)
    if isinstance(data, DataLoader):
        return _from_loader(data)
    raise TypeError(f"data must be (inputs, targets), an inputs tensor, a Dataset or a DataLoader, "
                    f"got {type(data).__name__}")


def _from_loader(loader: DataLoader):
    inputs, targets = [], []
    for batch in loader:
        if torch.is_tensor(batch):
            inputs.append(batch)
        else:
            inputs.append(batch[0])
            if len(batch) > 1:
                targets.append(torch.as_tensor(batch[1]))
    labelled = len(targets) == len(inputs)
    return torch.cat(inputs), torch.cat(targets) if labelled and targets else None
