"""The command line end to end: run, best, dashboard, and bad input, in real subprocesses."""

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers import free_port
from PIL import Image

from explainers import load_explainer
from tuner.cli import command_line

# the study of finished_run, which test_an_extra_worker_without_report_adds_trials_and_writes_no_files continues
DIGITS_RUN = dict(n_samples=6, study_name="s", explainers="epsilon_gamma_box,epsilon_plus", no_progress=True)

pytestmark = pytest.mark.slow  # every test here runs the command line in subprocesses


def cli(command, *flags, cwd=None, timeout=600, **options):
    return subprocess.run(
        command_line(command, *flags, **options), capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


@pytest.fixture(scope="module")
def finished_run(trained_digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    storage = f"sqlite:///{folder / 'study.db'}"
    done = cli("run", n_trials=6, storage=storage, out=folder / "out", cwd=folder, **DIGITS_RUN)
    assert done.returncode == 0, done.stderr
    return folder, storage, done


def test_run_end_to_end(finished_run, trained_digits):
    folder, storage, done = finished_run
    study = optuna.load_study(study_name="s", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 6
    for trial in complete:
        assert {
            "explainer",
            "explainer_params",
            "metric",
            "metric_settings",
            "model",
            "library_versions",
        } <= trial.user_attrs.keys()
        assert trial.user_attrs["model"]["parameters"] == sum(p.numel() for p in trained_digits[0].parameters())
        artifacts = optuna.artifacts.get_all_artifact_meta(trial, storage=optuna.storages.get_storage(storage))
        assert artifacts and artifacts[0].mimetype == "image/png"
        recorded = Path(study.user_attrs["artifact_dir"])
        assert not recorded.is_absolute()  # relative to the storage file: the two move together
        stored = folder / recorded / artifacts[0].artifact_id
        assert Image.open(stored).size[0] >= 800

    out = folder / "out"
    table = pd.read_csv(out / "summary.csv", index_col=0)
    assert {
        "LRPEpsilonGammaBox",
        "LRPEpsilonPlus",
        "Saliency (captum, no reference)",
        "InputXGradient (captum, zero reference)",
    } <= set(table.index)
    steps = study.user_attrs["ig_steps"]  # chosen by its completeness error, named in its row
    assert steps in (8, 16, 32, 64) and f"IntegratedGradients (captum, zero reference, {steps} steps)" in table.index
    printed = done.stdout.splitlines()
    assert max(map(len, printed)) <= 120 and printed[0].startswith("verdict on")  # a report that fits a terminal
    assert any(line.startswith("robustness panel:") for line in printed)
    plus = [t.value for t in complete if t.params["explainer"] == "LRPEpsilonPlus"]
    assert table.loc["LRPEpsilonPlus", "best"] == pytest.approx(max(plus))  # the best of that explainer's trials
    default = next(
        t for t in complete if t.params["explainer"] == "LRPEpsilonPlus" and t.user_attrs.get("default_configuration")
    )
    assert table.loc["LRPEpsilonPlus", "default"] == pytest.approx(default.value)
    assert Image.open(out / "heatmaps.png").size[1] >= 4 * 8
    saved = json.loads((out / "best.json").read_text())
    assert saved["value"] == pytest.approx(study.best_value)
    assert saved["explainer"] == study.best_trial.user_attrs["explainer"]
    explainer = load_explainer(out / "best.json", trained_digits[0])
    for name, value in study.best_trial.params.items():
        if name != "explainer":
            assert getattr(explainer, name.split(".")[-1]) == pytest.approx(value)
    assert "python -m tuner dashboard --storage" in done.stdout


def test_best_prints_the_best_configuration(finished_run):
    folder, storage, _ = finished_run
    done = cli("best", storage=storage, study_name="s", json=True)
    assert done.returncode == 0, done.stderr
    best = json.loads(done.stdout)
    study = optuna.load_study(study_name="s", storage=storage)
    assert best["value"] == pytest.approx(study.best_value) and best["params"] == study.best_params
    missing = cli("best", storage=storage, study_name="nope")
    assert missing.returncode != 0 and "studies there: s" in missing.stderr


def test_an_extra_worker_without_report_adds_trials_and_writes_no_files(finished_run, tmp_path):
    folder, _, _ = finished_run
    shutil.copy(folder / "study.db", tmp_path / "study.db")  # the shared fixture's study stays as it is
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    done = cli("run", n_trials=8, storage=storage, out=tmp_path / "out", no_report=True, cwd=tmp_path, **DIGITS_RUN)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="s", storage=storage)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 8
    assert not (tmp_path / "out").exists()
    assert f"(trial {study.best_trial.number})" in done.stdout and "summary" not in done.stdout


def _get(url: str, deadline: float):
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.headers.get("Content-Type", ""), response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_dashboard_serves_the_study_and_its_heatmaps(finished_run):
    folder, storage, _ = finished_run
    port = free_port()
    server = subprocess.Popen(
        command_line("dashboard", storage=storage, port=port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        status, _, body = _get(f"{base}/api/studies", deadline)
        studies_json = json.loads(body)["study_summaries"]
        assert status == 200 and [s["study_name"] for s in studies_json] == ["s"]
        study_id = studies_json[0]["study_id"]
        status, _, body = _get(f"{base}/api/studies/{study_id}", deadline)
        trials = json.loads(body)["trials"]
        assert len(trials) >= 6
        trial = next(t for t in trials if t["artifacts"])
        artifact = trial["artifacts"][0]
        status, kind, body = _get(
            f"{base}/artifacts/{study_id}/{trial['trial_id']}/{artifact['artifact_id']}", deadline
        )
        assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_resnet50_with_random_weights_runs(tmp_path):
    done = cli(
        "run",
        model="resnet50",
        weights="none",
        n_trials=1,
        n_samples=2,
        explainers="epsilon_plus",
        storage=f"sqlite:///{tmp_path / 'r.db'}",
        out=tmp_path / "out",
        no_progress=True,
        no_panel=True,  # the panel: test_panel.py
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "best.json").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet9000"], "digits"),
        (["--data", "{tmp}/missing"], "does not exist"),
        (["--data", "{tmp}/empty"], "no images"),
        (["--storage", "nosuchdb://x/y"], "cannot open storage"),
        (["--storage", "postgresql://user:s3cret@127.0.0.1:1/db"], "postgresql://user:***@127.0.0.1:1/db"),
        (["--n-trials", "0"], "at least 1"),
        (["--explainers", "epsilon_minus"], "unknown explainer"),
    ],
)
def test_bad_input_is_one_clear_line_and_creates_nothing(args, message, tmp_path, trained_digits):
    (tmp_path / "empty").mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    storage = ["--storage", f"sqlite:///{tmp_path / 'x.db'}"] if "--storage" not in args else []
    done = cli("run", *args, *storage, out=tmp_path / "out", cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr + done.stdout  # a password in a storage URL is masked
    assert len([line for line in done.stderr.splitlines() if line.strip()]) <= 2
    assert not (tmp_path / "x.db").exists() and not (tmp_path / "out").exists()


def test_a_small_image_folder_is_split_half_for_tuning_half_held_out(tmp_path, trained_digits):
    from sklearn.datasets import load_digits

    folder = tmp_path / "six"
    folder.mkdir()
    for index, image in enumerate(load_digits().images[:6]):
        Image.fromarray((image * 255 / 16).astype("uint8"), mode="L").save(folder / f"{index}.png")
    storage = f"sqlite:///{tmp_path / 's.db'}"
    common = dict(data=folder, n_trials=1, explainers="epsilon_plus", no_report=True, no_progress=True, storage=storage)
    default = cli("run", study_name="default", cwd=tmp_path, **common)
    assert default.returncode == 0, default.stderr
    assert "3 samples (3 held out)" in default.stderr  # the preset's 64 are more than the folder has
    asked = cli("run", study_name="asked", n_samples=6, cwd=tmp_path, **common)
    assert asked.returncode == 0, asked.stderr
    assert "6 samples (0 held out)" in asked.stderr  # an explicit --n-samples is kept
    fewer = cli("run", study_name="fewer", n_samples=3, n_holdout=1, cwd=tmp_path, **common)
    assert fewer.returncode == 0, fewer.stderr
    assert "3 samples (1 held out)" in fewer.stderr
    negative = cli("run", "--n-holdout", "-1", cwd=tmp_path, **common)
    assert negative.returncode == 2 and "--n-holdout: must be at least 0, got -1" in negative.stderr
