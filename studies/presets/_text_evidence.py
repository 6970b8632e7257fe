"""The embedded known-answer text preset: a tiny BERT trained at first use on sentences whose label is decided by
planted evidence words (:mod:`studies.presets._text_evidence_model`), cached by :mod:`studies.presets._cache`. Its
data is the fixed held-out set, (token ids, labels, masks): masks are bool (N, L), True on the evidence words."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .._base import Data, Preset
from ..loading._text import label_indices, read_texts, token_ids
from ..loading._weights import cache_dir
from ._cache import cached_model, embedded_model
from ._hf import NO_BOUNDS, import_transformers
from ._text_evidence_model import (
    MAX_POSITIONS,
    RECIPE_HASH,
    TOKEN,
    build_text_evidence_model,
    held_out_sentences,
    train_text_evidence_model,
)


def cache_path() -> Path:
    """Where the trained model is cached (the name holds the recipe's hash)."""
    return cache_dir() / f"text-evidence-bert-{RECIPE_HASH}.pt"


def cached_text_evidence_model() -> tuple[nn.Module, dict]:
    """The trained model from the cache, or trained and cached; the report says which."""
    return cached_model(cache_path(), build_text_evidence_model, train_text_evidence_model, "text evidence")


def load_text_evidence_model(weights: str | None, device: torch.device) -> nn.Module:
    """The classifier: trained and cached (None/DEFAULT), random ("none"), or from a state dict PATH."""
    import_transformers()  # a missing extra is one line, before the cache is read
    return embedded_model(weights, build_text_evidence_model, cached_text_evidence_model)


def _tokenize(text: str) -> list[int]:
    """[CLS], the words (lower case; an unknown word is [UNK]), [SEP]."""
    words = [TOKEN.get(word, TOKEN["[UNK]"]) for word in text.lower().split()]
    return [TOKEN["[CLS]"], *words, TOKEN["[SEP]"]]


def load_text_evidence_data(data_dir: Path | None, n_samples: int | None) -> Data:
    """The held-out sentences (ids, labels, masks), or a text file in the task's vocabulary (ids, labels or None)."""
    if data_dir is not None:
        texts, labels = read_texts(data_dir)
        texts = texts[:n_samples] if n_samples else texts
        ids = token_ids(texts, _tokenize, MAX_POSITIONS)
        return ids, None if labels is None else label_indices(labels[: len(ids)], None, 2)
    held_ids, held_labels, held_masks = held_out_sentences()
    return held_ids[:n_samples], held_labels[:n_samples], held_masks[:n_samples]


TEXT_EVIDENCE = Preset(
    name="text-evidence",
    description="a 2-layer BERT trained on synthetic sentences whose label is decided by planted evidence words, "
    "with the evidence known (masks)",
    model=load_text_evidence_model,
    data=load_text_evidence_data,
    low=NO_BOUNDS,
    high=NO_BOUNDS,
    defaults={"n_samples": 64, "n_trials": 40, "batch_size": 32},
)
