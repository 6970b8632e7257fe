"""The ``Metric`` base and the input checks every metric shares.

A metric scores attributions: ``evaluate(inputs, targets, attributions)`` returns one score per
sample, a tensor of shape (B,), and ``direction`` says whether higher (``"maximize"``) or lower
(``"minimize"``) is better. ``settings()`` returns the JSON-serialisable parameters, so a study can
record exactly what was measured.

Inputs are one of

- images ``(B, C, H, W)``: a feature is a pixel position, its relevance summed over channels;
- flat features ``(B, D)`` (float) or token ids ``(B, L)`` (integer): a feature is one column (a negative token
  id is padding: the perturbation metrics never replace it);
- embeddings ``(B, L, E)`` (float): a feature is a position, its relevance summed over ``E``.

Attributions always have exactly the shape of the inputs.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, overload

import torch
from torch import Tensor, nn


class Metric(abc.ABC):
    """Base of all metrics: ``evaluate`` (or call) scores attributions, one score per sample.

    Subclasses set ``direction`` (``"maximize"`` or ``"minimize"``), ``requires_model`` and store
    their constructor parameters in ``self._settings`` (see :meth:`settings`).
    """

    direction: str = "maximize"
    requires_model: bool = True
    uses_reference: bool = False
    """Whether :meth:`evaluate` accepts ``reference=`` scores from :meth:`reference` (p(x) of the unperturbed
    inputs), so that a caller scoring many attributions of the same inputs computes them once."""
    uses_masks: bool = False
    """Whether :meth:`evaluate` takes evidence masks as ``masks=`` (one bool mask per sample over the feature
    positions: true where the evidence is), as the localisation metrics do: ``evaluate(x, y, a, masks=m)``."""
    #: the constructor's keyword arguments besides the model, by name: the one declaration that the settings
    #: checks read (tests/test_declarations.py compares it with the constructor)
    SETTINGS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: nn.Module | None = None, **settings: Any) -> None:
        if self.requires_model and not isinstance(model, nn.Module):
            raise ValueError(
                f"{type(self).__name__} needs the model it evaluates: pass a torch.nn.Module as the "
                f"first argument, e.g. {type(self).__name__}(model), got {type(model).__name__}."
            )
        self.model = model
        self._settings = settings

    @abc.abstractmethod
    def evaluate(self, inputs: Tensor, targets: Tensor, attributions: Tensor) -> Tensor:
        """Score ``attributions`` of ``inputs`` for classes ``targets``; returns a (B,) tensor."""

    def reference(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """The per-sample scores :meth:`evaluate` may reuse as ``reference=``; only where ``uses_reference``."""
        raise NotImplementedError(f"{type(self).__name__} uses no reference scores (uses_reference is False)")

    @classmethod
    def accepted_settings(cls) -> frozenset[str]:
        """The keyword arguments the constructor takes besides the model (a caller holding one dict of
        settings for several metrics passes each the ones it takes)."""
        return frozenset(cls.SETTINGS)

    def __call__(self, inputs: Tensor, targets: Tensor, attributions: Tensor, **kwargs: Any) -> Tensor:
        return self.evaluate(inputs, targets, attributions, **kwargs)

    def settings(self) -> dict:
        """The metric's parameters as a JSON-serialisable dict (tensors and callables by description)."""
        return {key: _jsonable(value) for key, value in self._settings.items()}

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.settings().items())
        return f"{type(self).__name__}({args})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Tensor):
        return f"tensor of shape {list(value.shape)}" if value.numel() > 1 else value.item()
    if callable(value):
        return getattr(value, "__qualname__", type(value).__name__)
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True)
class Layout:
    """Where the features sit in an input tensor of shape (B, *shape)."""

    shape: tuple[int, ...]  # input shape without the batch dimension
    reduce_dims: tuple[int, ...]  # dims (of the batched tensor) summed into one feature's relevance
    positions: tuple[int, ...]  # the shape of the feature positions (H, W), (L,) or (D,)

    @property
    def n_positions(self) -> int:
        return math.prod(self.positions)

    @property
    def mask_shape(self) -> tuple[int, ...]:
        """Shape (without batch) to view a (N, n_positions) mask as, broadcastable to one input."""
        return tuple(1 if dim + 1 in self.reduce_dims else size for dim, size in enumerate(self.shape))


def layout_of(inputs: Tensor) -> Layout:
    """The feature layout of ``inputs``: images, flat features / token ids, or embeddings."""
    shape = tuple(inputs.shape[1:])
    if inputs.ndim == 4:
        return Layout(shape, (1,), shape[1:])
    if inputs.ndim == 3:
        if not inputs.is_floating_point():
            raise ValueError(
                "3-d inputs are read as embeddings (B, L, E) and must be float; "
                f"got dtype {inputs.dtype}. Pass token ids as (B, L)."
            )
        return Layout(shape, (2,), shape[:1])
    if inputs.ndim == 2:
        return Layout(shape, (), shape)
    raise ValueError(
        f"inputs must be images (B, C, H, W), flat features or token ids (B, D), or embeddings "
        f"(B, L, E); got shape {tuple(inputs.shape)}."
    )


def position_relevance(attributions: Tensor, layout: Layout) -> Tensor:
    """Relevance per feature position, (B, n_positions): summed over channels / embedding dims."""
    relevance = attributions.sum(dim=layout.reduce_dims) if layout.reduce_dims else attributions
    return relevance.reshape(len(attributions), -1)


@overload
def check_inputs(inputs: Tensor, targets: Tensor | Sequence[int], attributions: Tensor) -> Tensor: ...
@overload
def check_inputs(inputs: Tensor, targets: None, attributions: Tensor) -> None: ...
def check_inputs(inputs: Tensor, targets: Tensor | Sequence[int] | None, attributions: Tensor) -> Tensor | None:
    """Raise ``ValueError`` on malformed arguments; returns ``targets`` as a LongTensor (or None)."""
    if not isinstance(inputs, Tensor) or not isinstance(attributions, Tensor):
        raise ValueError(
            "inputs and attributions must be torch tensors; got "
            f"{type(inputs).__name__} and {type(attributions).__name__}."
        )
    if tuple(attributions.shape) != tuple(inputs.shape):
        raise ValueError(
            f"attributions must have the shape of the inputs, {tuple(inputs.shape)}; got "
            f"{tuple(attributions.shape)}. Return attributions for every input element (sum or "
            "broadcast channel-reduced heatmaps back to the input shape)."
        )
    if not attributions.is_floating_point():
        raise ValueError(f"attributions must be a float tensor; got dtype {attributions.dtype}.")
    if not torch.isfinite(attributions).all():
        bad = (~torch.isfinite(attributions)).flatten(1).any(1).nonzero().flatten().tolist()
        raise ValueError(
            f"attributions contain NaN or Inf (samples {bad}); a metric cannot score them. Fix the "
            "explainer configuration (e.g. a larger epsilon) or drop these samples."
        )
    if targets is None:
        return None
    targets = torch.as_tensor(targets)
    if targets.ndim != 1 or len(targets) != len(inputs):
        raise ValueError(
            f"targets must be a 1-d tensor with one class index per sample ({len(inputs)}); got shape "
            f"{tuple(targets.shape)}."
        )
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices (torch.long); got dtype {targets.dtype}.")
    return targets.long()
