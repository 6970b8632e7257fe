"""Faithfulness correlation (Bhatt et al. 2020)."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor, nn

from .._base import position_relevance
from .._registry import register_metric
from ._engine import PerturbationMetric, feature_ids, feature_relevance

#: subset draws averaged by default: a 64-sample mean of the digits moves by 0.0056 between 8 seeds (README, metrics;
#: benchmarks/fc_repeats.py), under the 0.01 target
N_REPEATS = 24


@register_metric("faithfulness_correlation")
class FaithfulnessCorrelation(PerturbationMetric):
    """Pearson correlation between a random subset's relevance and the output drop it causes.

    For runs r = 1..``n_runs``, a random subset S_r of ``subset_size`` features (positions or
    ``patch_size`` patches, relevance summed over channels) takes the baseline; with p the target's
    softmax probability,

        FC(x) = corr_r( sum_{i in S_r} R_i ,  p(x) - p(x with S_r removed) ).

    Higher is better. Subsets are drawn from ``torch.Generator`` objects seeded from ``seed`` on every call
    (the global RNGs are never touched), so the same inputs and seed give the same score and every attribution
    of the same inputs is scored on the same subsets. By default each sample has its own subsets (drawn from
    ``seed`` and a hash of the sample's values, so a sample scores the same in any batch): their noise averages
    out over the samples of a mean. ``shared_subsets=True`` draws one set for the whole batch, as Quantus does;
    then the noise is common to all samples and does not average out. The score is the mean of FC over
    ``n_repeats`` independent draws of the n_runs subsets (seeds ``seed`` .. ``seed + n_repeats - 1``); the
    spread of a 64-sample mean between subset seeds is measured by benchmarks/fc_repeats.py (README, metrics).
    Where the subset relevances or the drops are constant the correlation is undefined and the score is 0.
    Makes ceil((n_repeats n_runs + 1) B / batch_size) forward passes (n_repeats n_runs B with ``reference``).

    Args:
        subset_size: features per subset: an int, a float in (0, 1) as a fraction of the features, or None
            (default) for Quantus's 224 where the input has more than 4 × 224 features, else a quarter of them.
        shared_subsets: one draw of subsets for every sample of a batch (Quantus's definition) instead of
            independent subsets per sample (the default, whose noise averages out over samples).
        **common: the shared options of :class:`metrics.perturbation._engine.PerturbationMetric` (``baseline``,
            ``prob_fn``, ``batch_size``, ``blur_sigma``, ``baseline_seed``).

    Reference: U. Bhatt, A. Weller, J. M. F. Moura, "Evaluating and aggregating feature-based
    model explanations", IJCAI 2020.
    """

    direction = "maximize"

    SETTINGS = ("n_runs", "n_repeats", "subset_size", "seed", "patch_size", "shared_subsets")

    def __init__(
        self,
        model: nn.Module,
        *,
        n_runs: int = 100,
        n_repeats: int = N_REPEATS,
        subset_size: int | float | None = None,
        seed: int = 0,
        patch_size: int | tuple[int, ...] = 1,
        shared_subsets: bool = False,
        **common: Any,
    ) -> None:
        if not isinstance(n_runs, int) or n_runs < 2:
            raise ValueError(f"n_runs must be an int >= 2 to correlate; got {n_runs!r}.")
        if not isinstance(n_repeats, int) or isinstance(n_repeats, bool) or n_repeats < 1:
            raise ValueError(f"n_repeats must be a positive int; got {n_repeats!r}.")
        if not (
            subset_size is None
            or isinstance(subset_size, int)
            and subset_size >= 1
            or isinstance(subset_size, float)
            and 0 < subset_size < 1
        ):
            raise ValueError(f"subset_size must be a positive int or a fraction in (0, 1); got {subset_size!r}.")
        super().__init__(
            model,
            n_runs=n_runs,
            n_repeats=n_repeats,
            subset_size=subset_size,
            seed=seed,
            patch_size=patch_size,
            shared_subsets=shared_subsets,
            **common,
        )
        self.shared_subsets = bool(shared_subsets)
        self.n_runs, self.subset_size, self.seed, self.patch_size = n_runs, subset_size, seed, patch_size
        self.n_repeats = n_repeats

    def subsets(
        self, batch_size: int, n_features: int, repeat: int = 0, *, sample_keys: list[int] | None = None
    ) -> Tensor:
        """The random subsets of draw ``repeat`` as a boolean (n_runs, B, n_features) mask. With ``sample_keys``
        (one int per sample, from its content: :func:`sample_keys`) and not ``shared_subsets``, each sample gets
        its own subsets, drawn from (``seed`` + ``repeat``, its key); otherwise one draw from ``seed`` + ``repeat``
        serves every sample (Quantus's definition). Either way a sample's subsets do not depend on the batch it
        is scored in, and every attribution of the same inputs is scored on the same subsets."""
        size = self._subset_size(n_features)
        if sample_keys is None or self.shared_subsets:
            generator = torch.Generator().manual_seed(self.seed + repeat)
            noise = torch.rand(self.n_runs, 1, n_features, generator=generator).expand(-1, batch_size, -1)
        else:
            if len(sample_keys) != batch_size:
                raise ValueError(f"{len(sample_keys)} sample keys for a batch of {batch_size}")
            # the random numbers only: one generator per sample; the forward passes stay batched
            noise = torch.stack(
                [
                    torch.rand(
                        self.n_runs, n_features, generator=torch.Generator().manual_seed(_mix(self.seed + repeat, key))
                    )
                    for key in sample_keys
                ],
                dim=1,
            )
        chosen = noise.topk(size, dim=-1).indices
        return torch.zeros(noise.shape, dtype=torch.bool).scatter_(-1, chosen, True)

    def _subset_size(self, n_features: int) -> int:
        if self.subset_size is None:
            size = min(224, max(1, n_features // 4))
        elif isinstance(self.subset_size, int):
            size = self.subset_size
        else:
            size = max(1, int(self.subset_size * n_features))
        if size >= n_features:
            raise ValueError(
                f"subset_size={self.subset_size} leaves no feature unperturbed: there are "
                f"{n_features} features; use fewer (or a fraction such as 0.1)."
            )
        return size

    def evaluate(
        self, inputs: Tensor, targets: Tensor, attributions: Tensor, *, reference: Tensor | None = None
    ) -> Tensor:
        """Faithfulness correlation per sample, (B,), the mean over ``n_repeats`` draws of subsets;
        ``reference``: p(x) from :meth:`reference`."""
        inputs, targets, attributions, layout = self._prepare(inputs, targets, attributions)
        reference = self._check_reference(reference, inputs)
        ids = feature_ids(layout, self.patch_size).to(inputs.device)
        relevance = feature_relevance(position_relevance(attributions, layout), ids)
        batch, n_features = relevance.shape
        draws = self.n_repeats * self.n_runs
        keys = None if self.shared_subsets else sample_keys(inputs)
        subsets = torch.cat([self.subsets(batch, n_features, r, sample_keys=keys) for r in range(self.n_repeats)])
        subsets = subsets.to(inputs.device)
        masks = subsets[:, :, ids].reshape(-1, layout.n_positions)  # run-major rows, every draw in one batch
        rows = torch.arange(batch, device=inputs.device).repeat(draws)
        if reference is None:
            rows = torch.cat([rows, torch.arange(batch, device=inputs.device)])
            masks = torch.cat([masks, masks.new_zeros(batch, layout.n_positions)])
        scores = self._scores(inputs, targets, layout, rows, masks)
        if reference is None:
            scores, reference = scores[:-batch], scores[-batch:]
        drops = (reference[None] - scores.view(draws, batch)).view(self.n_repeats, self.n_runs, batch)
        subset_relevance = (subsets * relevance[None]).sum(-1).float().view(self.n_repeats, self.n_runs, batch)
        correlations = [pearson(subset_relevance[r].T, drops[r].T) for r in range(self.n_repeats)]
        return torch.stack(correlations).mean(0)


def sample_keys(inputs: Tensor) -> list[int]:
    """One 63-bit key per sample from its values (BLAKE2b of its bytes): the same sample gets the same key in
    any batch and on any device."""
    flat = inputs.detach().to("cpu", torch.float32).contiguous().flatten(1).numpy()
    return [int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little") >> 1 for row in flat]


def _mix(seed: int, key: int) -> int:
    """A generator seed from a subset seed and a sample key (distinct keys give unrelated streams)."""
    data = seed.to_bytes(16, "little", signed=True) + key.to_bytes(8, "little")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise Pearson correlation of (B, n) tensors; 0 where either row is constant."""
    a = a.double() - a.double().mean(1, keepdim=True)
    b = b.double() - b.double().mean(1, keepdim=True)
    denominator = a.norm(dim=1) * b.norm(dim=1)
    corr = (a * b).sum(1) / denominator.clamp_min(1e-300)
    return torch.where(denominator > 0, corr, torch.zeros_like(corr)).float()
