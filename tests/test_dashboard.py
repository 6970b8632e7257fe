"""The dashboard holds the result (files as study artifacts, the table in the note, nothing piled up on re-runs),
and its artifacts move with the storage: a missing folder is one warning and 404s, never HTTP 500 or a new folder."""

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import optuna
import pytest
import torch
from helpers import run_tune
from optuna_dashboard import get_note
from torch import nn

from explainers import LRPUniformEpsilon
from tuner.cli import command_line
from tuner.evidence._dashboard import study_artifacts
from tuner.evidence._report import write_report


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    """A small stored study (a tiny CNN on random 8x8 images, 3 classes) and its report."""
    folder = tmp_path_factory.mktemp("dash")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3)).eval()
    inputs, labels = torch.randn(12, 1, 8, 8), torch.arange(12) % 3
    storage = f"sqlite:///{folder / 'db' / 'study.db'}"
    result = run_tune(
        LRPUniformEpsilon,
        model,
        (inputs, labels),
        n_trials=3,
        n_samples=6,
        storage=storage,
        study_name="s",
        show_progress_bar=False,
    )
    table = write_report(result, model, folder / "out", study_name="s", storage=storage)
    return folder, storage, result, model, table


def test_the_result_is_in_the_study_note_and_artifacts_and_a_rerun_adds_nothing(study_run):
    folder, storage, result, model, table = study_run
    storage_obj = optuna.storages.get_storage(storage)
    names = sorted(record["filename"] for record in study_artifacts(storage_obj, result.study))
    assert names == ["best.json", "heatmaps.png", "panel.csv", "summary.csv"]  # the robustness panel too
    note = get_note(result.study)
    assert "| explainer |" in note and "best.json" in note
    for name in table.index:  # every row of the table, captum's included, is in the note
        assert f"| {name} |" in note
    assert f"trial {result.best_trial.number}" in note and "highest mean AbPC" in note
    write_report(result, model, folder / "out", study_name="s", storage=storage)  # the same report again
    again = sorted(record["filename"] for record in study_artifacts(storage_obj, result.study))
    assert again == names  # identical files are not uploaded twice
    (folder / "out" / "summary.csv").write_text("changed\n")
    from tuner.evidence._dashboard import upload_once

    assert upload_once(result.study, storage_obj, result.objective.artifacts, folder / "out" / "summary.csv")
    records = [r for r in study_artifacts(storage_obj, result.study) if r["filename"] == "summary.csv"]
    assert len(records) == 1  # a changed file replaces the old one


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status(url: str, deadline: float) -> tuple[int, bytes]:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _serve_and_fetch(storage: str, cwd, *extra: str) -> tuple[list[int], str]:
    """Start `python -m tuner dashboard`, fetch the study's artifacts; (HTTP statuses, stderr)."""
    port = _free_port()
    server = subprocess.Popen(
        command_line("dashboard", *extra, storage=storage, port=port),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 90
        status, body = _status(f"{base}/api/studies", deadline)
        study_id = json.loads(body)["study_summaries"][0]["study_id"]
        status, body = _status(f"{base}/api/studies/{study_id}", deadline)
        detail = json.loads(body)
        urls = [f"{base}/artifacts/{study_id}/{a['artifact_id']}" for a in detail.get("artifacts", [])]
        urls += [
            f"{base}/artifacts/{study_id}/{t['trial_id']}/{a['artifact_id']}"
            for t in detail["trials"]
            for a in t["artifacts"]
        ]
        assert urls, "the study lists no artifacts"
        statuses = [_status(url, deadline)[0] for url in urls[:4]]
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    return statuses, stderr


@pytest.mark.slow  # a subprocess of the command line
def test_a_moved_storage_finds_its_artifacts_and_a_missing_folder_is_404_not_500(study_run, tmp_path):
    folder = study_run[0]
    moved = tmp_path / "moved"
    shutil.copytree(folder / "db", moved)  # the storage and its artifact folder, moved together
    storage = f"sqlite:///{moved / 'study.db'}"
    statuses, _ = _serve_and_fetch(storage, tmp_path)
    assert set(statuses) == {200}
    shutil.rmtree(moved / "study-artifacts")
    statuses, stderr = _serve_and_fetch(storage, tmp_path)
    assert set(statuses) == {404}  # not 500, and no traceback
    assert "Traceback" not in stderr
    warnings = [line for line in stderr.splitlines() if "study-artifacts" in line and "--artifact-dir" in line]
    assert len(warnings) == 1, stderr
    assert not (moved / "study-artifacts").exists()  # the dashboard creates no empty folder
