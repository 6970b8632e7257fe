"""The known-answer text task: a tiny BERT trained on sentences whose label is decided by planted evidence words.
Its masks mark exactly those words; AttnLRP puts its relevance there, a wrong explanation does not; a study reports
the relevance mass of the best configuration against its default on held-out sentences, with an interval."""

from __future__ import annotations

import pytest
import torch

from explainers.attnlrp import LRPAttn
from metrics import get_metric
from studies import get_preset
from studies.presets._text_evidence_model import (
    EVIDENCE,
    FILLERS,
    TOKEN,
    held_out_sentences,
    make_sentences,
    train_text_evidence_model,
)
from tuner import Budget, Objective, Report, tune


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model, report = train_text_evidence_model()
    return model, report


def test_the_masks_mark_exactly_the_evidence_words() -> None:
    ids, labels, masks = make_sentences(200, seed=5)
    fillers = {TOKEN[word] for word in FILLERS}
    for row, label, mask in zip(ids, labels, masks):
        evidence = {TOKEN[word] for word in EVIDENCE[int(label)]}
        assert set(row[mask].tolist()) <= evidence and mask.sum() >= 1
        inside = row[~mask & (row >= 0)].tolist()
        assert set(inside[1:-1]) <= fillers  # between [CLS] and [SEP]: fillers only
    assert (ids < 0).any() and not masks[ids < 0].any()  # padded sentences, no evidence on padding


def test_the_classifier_learns_the_task(trained) -> None:
    model, report = trained
    assert report["accuracy"] >= 0.95
    ids, labels, _ = held_out_sentences()
    with torch.no_grad():
        assert float((model(ids).argmax(1) == labels).float().mean()) == pytest.approx(report["accuracy"])


def test_attnlrp_finds_the_evidence_and_a_wrong_map_does_not(trained) -> None:
    model, _ = trained
    ids, labels, masks = (tensor[:32] for tensor in held_out_sentences())
    mass = get_metric("relevance_mass")
    relevance = LRPAttn(model).attribute(ids, labels)
    found = mass(ids, labels, relevance, masks=masks)
    chance = (masks.sum(1) / (ids >= 0).sum(1)).float()  # the evidence's share of the tokens
    assert float(found.mean()) > 0.8 > 3 * float(chance.mean())
    wrong = mass(ids, labels, relevance.roll(1, dims=1), masks=masks)  # each token given its neighbour's relevance
    assert float(wrong.mean()) < 0.3


def test_a_study_on_the_preset_reports_the_known_evidence(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LRP_TUNER_CACHE", str(tmp_path / "cache"))
    preset = get_preset("text-evidence")
    model = preset.load_model()
    ids, labels, masks = preset.load_data(n_samples=48)
    result = tune(None, model, (ids, labels, masks), objective=Objective("relevance_mass"),
                  budget=Budget(n_trials=5, n_samples=24), report=Report(panel=False, n_heatmaps=0))  # fmt: skip
    table = result.known_evidence()
    row = table.iloc[0]
    assert row["against"] == "default of its variant" and row["n"] == 24
    assert 0.5 < row["best"] <= 1.0 and row["CI low"] <= row["diff"] <= row["CI high"]
    assert (tmp_path / "cache").is_dir()  # the trained model was cached there
