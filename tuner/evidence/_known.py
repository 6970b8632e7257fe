"""The known evidence's table: where the held-out samples carry evidence masks, does the best configuration put
its positive relevance on the evidence more or less than its variant's default and than each reference row?

The score is relevance mass accuracy (the share of positive relevance inside the mask, Arras et al. 2022) on every
held-out sample: it needs no forward pass, so no panel budget cuts it. The differences are paired (best minus the
other, on the same samples) with a 95% bootstrap interval and the Wilcoxon p-value (:func:`._statistics.compare`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from metrics import RelevanceMassAccuracy

from ._heldout import HeldOutScorer
from ._statistics import compare

METRIC = "relevance mass"


def known_evidence(scorer: HeldOutScorer, best: Any, against: list[tuple[str, str, Any]]) -> pd.DataFrame:
    """One row per comparison of the ``best`` configuration with another (``against``: (kind, name, explainer)):
    both relevance masses on the held-out samples, the mean paired difference, its interval and p. Empty without
    evidence masks."""
    masks = scorer.holdout.masks
    if masks is None:
        return pd.DataFrame()
    ours = _mass(scorer, best, masks)
    rows = []
    for kind, name, explainer in against:
        theirs = _mass(scorer, explainer, masks)
        rows.append(
            {"against": kind, "method": name, "best": float(ours.mean()), "other": float(theirs.mean())}
            | compare(ours, theirs).as_dict()
        )
    return pd.DataFrame(rows)


def _mass(scorer: HeldOutScorer, explainer: Any, masks: torch.Tensor) -> torch.Tensor:
    """The explainer's relevance mass on each held-out sample, from the held-out pass's attributions."""
    holdout = scorer.holdout
    attributions = scorer.attributions(explainer).to(holdout.inputs.device)
    return RelevanceMassAccuracy().evaluate(holdout.inputs, holdout.targets, attributions, masks=masks)
