"""Shares of a neuron's relevance: the positive and negative parts of its contributions, and which parts count
as empty (the fallback of the conserving rules)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast

import torch

StabilizerLike = float | Callable[[torch.Tensor], torch.Tensor]


def positive_part(input: torch.Tensor) -> torch.Tensor:
    return input.clamp(min=0)


def negative_part(input: torch.Tensor) -> torch.Tensor:
    return input.clamp(max=0)


def sum_of(parts: Iterable[torch.Tensor]) -> torch.Tensor:
    """``sum(parts)``, as Python adds it up (from 0): a tensor, as there is always at least one part."""
    return cast(torch.Tensor, sum(parts))


def empty_part(part: torch.Tensor, stabilizer_fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Where a part (the positive or negative total of a neuron) is no larger than what the stabilizer adds to it:
    dividing by it would hand the neuron's relevance to the stabilizer, so the part counts as empty."""
    return part.abs() <= (stabilizer_fn(part) - part).abs()


def exact_part(part: torch.Tensor, empty: torch.Tensor) -> torch.Tensor:
    """The part itself as the denominator where it is not empty (so the shares sum exactly to the neuron's
    relevance; the stabilizer's only job is to say which parts are empty), 1 where it is (a share of 0 there)."""
    return part.masked_fill(empty, 1.0)
