"""The fixed samples a study scores: (inputs, targets) from tensors, a Dataset or a DataLoader."""
from typing import Optional, Tuple, Union

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

Data = Union[Tuple[torch.Tensor, torch.Tensor], torch.Tensor, Dataset, DataLoader]


def fixed_samples(data: Data, model: nn.Module, n_samples: Optional[int], seed: int,
                  device: torch.device, batch_size: int = 64) -> Tuple[torch.Tensor, torch.Tensor]:
    """``n_samples`` inputs and their targets, drawn once with ``seed`` so every trial scores the same ones.

    Targets are the labels where ``data`` has them, else the model's predictions.
    """
    inputs, targets = _materialise(data, n_samples)
    if not torch.is_tensor(inputs) or inputs.ndim < 2 or len(inputs) == 0:
        raise ValueError("data must hold at least one sample: (inputs, targets) tensors, an inputs tensor "
                         "shaped (N, ...), a torch Dataset or a DataLoader")
    if targets is not None and len(targets) != len(inputs):
        raise ValueError(f"data has {len(inputs)} inputs but {len(targets)} targets")
    if n_samples is not None:
        if n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {n_samples}")
        if n_samples < len(inputs):
            order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed))[:n_samples]
            order = order.sort().values
            inputs = inputs[order]
            targets = None if targets is None else targets[order]
    inputs = inputs.to(device)
    if targets is None:
        with torch.no_grad():
            targets = torch.cat([model(chunk).argmax(1) for chunk in inputs.split(batch_size)])
    return inputs, torch.as_tensor(targets).long().to(device)


def _materialise(data: Data, n_samples: Optional[int]):
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
