"""Scale-out and faults with real processes: several workers on one PostgreSQL study, SIGKILL, Ctrl-C,
the dashboard reading while workers write, and bad input that must leave a stored study untouched."""

import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import optuna
import pytest
from helpers import free_port, wait_for
from optuna.trial import TrialState

from tuner.cli import command_line

pytestmark = pytest.mark.slow  # every test here runs the command line in subprocesses


def worker_env() -> dict:
    """Read when a process starts, so it sees the session's LRP_TUNER_CACHE (set by the trained_digits fixture)."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def worker(storage: str, study_name: str, out, *extra: str, n_trials: int = 6, n_samples: int = 64):
    """A `python -m tuner run` process on the embedded digits model."""
    command = command_line(
        "run",
        storage=storage,
        study_name=study_name,
        n_trials=n_trials,
        n_samples=n_samples,
        batch_size=8,
        explainers="uniform_epsilon",
        pruner="none",
        no_progress=True,
        no_panel=True,  # the workers' totals are tested here; the panel and the captum rows have their own tests
        no_baselines=True,
        heartbeat=1,
        out=out,
    )
    command += extra
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=worker_env(), cwd=Path(out).parent
    )  # artifacts of a PostgreSQL study go to the working directory


def states(storage: str, study_name: str):
    study = optuna.load_study(study_name=study_name, storage=storage)
    return study, [t.state for t in study.get_trials(deepcopy=False)]


def running_trial(storage: str, study_name: str, after_complete: int = 1):
    """Wait until the study has ``after_complete`` complete trials and one running; return that one's number."""

    def probe():
        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
        except KeyError:
            return None
        trials = study.get_trials(deepcopy=False)
        running = [t.number for t in trials if t.state == TrialState.RUNNING]
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        return running[0] if running and done >= after_complete else None

    return wait_for(probe, timeout=180)


def stop_mid_trial(process: subprocess.Popen, storage: str, study_name: str) -> int:
    """Freeze the only worker (SIGSTOP) while it is inside a trial whose parameters are drawn; return that trial's
    number. Looking while it is frozen rules out the trial finishing between the look and the signal the test sends
    next (a trial caught between its creation and its first parameter is let go on, as between two trials)."""
    while True:
        running_trial(storage, study_name)
        process.send_signal(signal.SIGSTOP)
        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
            trials = study.get_trials(deepcopy=False)
            running = [t.number for t in trials if t.state == TrialState.RUNNING and t.params]
        except Exception:  # frozen while holding SQLite's write lock: let it go on and look again
            running = []
        if running:  # frozen: it stays running until the test's next signal
            return running[0]
        process.send_signal(signal.SIGCONT)  # caught between two trials: let it start the next one


def test_two_workers_finish_exactly_n_trials(postgres_url, trained_digits, tmp_path):
    name = f"two-{uuid.uuid4().hex[:8]}"
    workers = [worker(postgres_url, name, tmp_path / f"out{i}", n_trials=8) for i in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in outputs]
    study, trial_states = states(postgres_url, name)
    assert trial_states.count(TrialState.COMPLETE) == 8
    assert TrialState.RUNNING not in trial_states
    numbers = {t.number for t in study.trials}
    assert len(numbers) == len(study.trials)


def test_killed_worker_trial_is_retried_and_the_total_is_exact(postgres_url, trained_digits, tmp_path):
    name = f"kill-{uuid.uuid4().hex[:8]}"
    victim = worker(postgres_url, name, tmp_path / "a", n_samples=128)
    try:
        killed = stop_mid_trial(victim, postgres_url, name)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        victim.kill()
    survivor = worker(postgres_url, name, tmp_path / "b", n_samples=128)
    _, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err

    study, trial_states = states(postgres_url, name)
    assert TrialState.RUNNING not in trial_states, trial_states
    assert trial_states.count(TrialState.COMPLETE) == 6, trial_states
    assert study.trials[killed].state == TrialState.FAIL, (killed, trial_states)
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed]
    assert retries and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == study.trials[killed].params


def test_ctrl_c_fails_the_running_trial_and_the_same_command_resumes(trained_digits, tmp_path):
    storage, name = f"sqlite:///{tmp_path / 'study.db'}", "interrupted"
    first = worker(storage, name, tmp_path / "out", n_samples=128)
    try:
        interrupted = stop_mid_trial(first, storage, name)
        first.send_signal(signal.SIGINT)  # handled when the process continues
        first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 130 and "resume" in err and "Traceback" not in err, err
    study, trial_states = states(storage, name)
    assert TrialState.RUNNING not in trial_states, trial_states
    assert study.trials[interrupted].state == TrialState.FAIL, (interrupted, trial_states)
    complete_before = trial_states.count(TrialState.COMPLETE)

    again = worker(storage, name, tmp_path / "out", n_samples=128)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    study, trial_states = states(storage, name)
    assert trial_states.count(TrialState.COMPLETE) == 6 > complete_before
    assert TrialState.RUNNING not in trial_states


def test_dashboard_keeps_answering_while_workers_write(postgres_url, trained_digits, tmp_path):
    name = f"live-{uuid.uuid4().hex[:8]}"
    writer = worker(postgres_url, name, tmp_path / "out", n_trials=6)
    port = free_port()
    dashboard = subprocess.Popen(
        command_line("dashboard", storage=postgres_url, port=port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    answers = []
    try:
        wait_for(lambda: _ok(f"{base}/api/studies"), timeout=60)
        while writer.poll() is None:
            studies = json.loads(urllib.request.urlopen(f"{base}/api/studies", timeout=10).read())
            for summary in studies["study_summaries"]:
                if summary["study_name"] == name:
                    detail = urllib.request.urlopen(f"{base}/api/studies/{summary['study_id']}", timeout=10)
                    answers.append((detail.status, len(json.loads(detail.read())["trials"])))
            time.sleep(0.3)
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)
        writer.kill()
    assert writer.returncode == 0
    assert len(answers) >= 3 and all(status == 200 for status, _ in answers)
    assert answers[-1][1] >= answers[0][1]  # it saw the study grow


def _ok(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=5).status == 200
    except OSError:
        return False


def _run(*args, cwd, **options):
    return subprocess.run(
        command_line("run", *args, no_progress=True, **options),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=worker_env(),
        timeout=600,
    )


@pytest.mark.parametrize("content", [b"not a checkpoint", "mismatched"])
def test_bad_weights_file_is_a_clear_error_before_any_study(content, tmp_path):
    import torch

    weights = tmp_path / "weights.pt"
    if content == "mismatched":
        torch.save({"conv1.weight": torch.zeros(1)}, weights)
    else:
        weights.write_bytes(content)
    done = _run(model="resnet18", weights=weights, storage=f"sqlite:///{tmp_path / 's.db'}", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert str(weights) in done.stderr
    assert not (tmp_path / "s.db").exists()


def test_a_study_with_another_direction_or_space_is_refused_and_left_alone(trained_digits, tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    mine = dict(storage=storage, study_name="mine", n_samples=4, cwd=tmp_path)
    first = _run(n_trials=2, explainers="epsilon_plus", out=tmp_path / "o", **mine)
    assert first.returncode == 0, first.stderr
    before = [(t.number, t.state, t.value) for t in optuna.load_study(study_name="mine", storage=storage).trials]
    for args, message in ((["--metric", "lerf"], "direction"), (["--explainers", "epsilon_gamma_box"], "search space")):
        explainers = ["--explainers", "epsilon_plus"] if "--explainers" not in args else []
        done = _run(*explainers, *args, n_trials=4, out=tmp_path / "o2", **mine)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    after = [(t.number, t.state, t.value) for t in optuna.load_study(study_name="mine", storage=storage).trials]
    assert after == before
