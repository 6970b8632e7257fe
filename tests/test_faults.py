"""Fault injection: what a hostile or unlucky user does to a study, and the study afterwards.

Real `python -m tuner` processes where a process is involved (moved artifacts, other weights, Ctrl-C and
SIGTERM in a default's trial, read-only commands, bad input); each test reads the stored study back (trial
states and counts, fingerprints, attributes), not only the exit code.
"""

import shutil
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import torch
from helpers import hook_count, run_tune
from optuna.trial import TrialState
from PIL import Image
from test_workers import worker_env
from torch import nn

from explainers import LRPEpsilonGammaBox, LRPUniformEpsilon
from tuner.cli import command_line
from tuner.search._study import StudyMismatchError, record_storage
from tuner.storage._open import _first_line, mask_url, redact

FAST = dict(explainers="uniform_epsilon", pruner="none", batch_size=8, no_progress=True, no_report=True)


def cli(argv: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=worker_env(), timeout=timeout)


def run_command(storage: str, *args: str, n_trials: int = 3, n_samples: int = 8) -> list[str]:
    """A quick (``FAST``) ``run`` of the study "s" on the digits model; ``args`` last, so that they win."""
    return [
        *command_line("run", storage=storage, study_name="s", n_trials=n_trials, n_samples=n_samples, **FAST),
        *args,
    ]


def run(storage: str, *args: str, cwd: Path, **sizes: int) -> subprocess.CompletedProcess:
    return cli(run_command(storage, *args, **sizes), cwd=cwd)


def trials(storage: str, name: str = "s") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def count(storage: str, state: TrialState, name: str = "s") -> int:
    return sum(t.state == state for t in trials(storage, name))


def one_clear_line(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    # at most the model line and the study line before it, then the one error line
    context = [line for line in lines[:-1] if not line.startswith(("model ", "study "))]
    assert lines[-1:] and lines[-1].startswith("error:") and not context and len(lines) <= 3, done.stderr


# -- artifacts never block a study -----------------------------------------------------------------------------
@pytest.mark.slow  # a subprocess of the command line
def test_a_copied_storage_whose_heatmaps_are_gone_resumes(trained_digits, tmp_path):
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    first = run(storage, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    shutil.copy(tmp_path / "a.db", tmp_path / "b.db")  # a copy under another name, its artifacts not copied
    shutil.rmtree(tmp_path / "a-artifacts")  # and the original's heatmaps deleted
    copy = f"sqlite:///{tmp_path / 'b.db'}"
    study = optuna.load_study(study_name="s", storage=copy)
    answered = study.best_trial
    study.enqueue_trial(answered.params)  # a repeat: answered from the study, whose heatmap is gone

    again = run(copy, cwd=tmp_path, n_trials=5)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr and "is missing" in again.stderr
    stored = trials(copy)
    complete = [t for t in stored if t.state == TrialState.COMPLETE]
    assert sum("repeat_of" not in t.user_attrs for t in complete) == 5  # a repeat does not count towards 5
    assert len(complete) == 6
    assert TrialState.FAIL not in [t.state for t in stored]
    repeat = next(t for t in stored if t.user_attrs.get("repeat_of") == answered.number)
    metas = optuna.artifacts.get_all_artifact_meta(repeat, storage=optuna.storages.RDBStorage(copy))
    assert len(metas) == 1 and (tmp_path / "b-artifacts" / metas[0].artifact_id).is_file()  # it drew its own
    assert optuna.load_study(study_name="s", storage=copy).user_attrs["artifact_dir"] == "b-artifacts"  # beside b.db


# -- one study, one model ---------------------------------------------------------------------------------------
@pytest.mark.slow  # a subprocess of the command line
def test_random_weights_are_drawn_from_the_seed_and_another_model_is_refused(trained_digits, tmp_path):
    storage = f"sqlite:///{tmp_path / 'b.db'}"
    first = run(storage, "--weights", "none", cwd=tmp_path, n_trials=2)
    assert first.returncode == 0, first.stderr
    second = run(storage, "--weights", "none", cwd=tmp_path, n_trials=4)  # the same command: the same model
    assert second.returncode == 0, second.stderr
    stored = trials(storage)
    assert [t.state for t in stored].count(TrialState.COMPLETE) == 4
    assert len({t.user_attrs["model"]["sha256"] for t in stored}) == 1

    for other in (["--n-trials", "6"], ["--weights", "none", "--seed", "1", "--n-trials", "6"]):
        done = run(storage, *other, cwd=tmp_path)  # the trained model, then random weights of another seed
        one_clear_line(done)
        assert "another model" in done.stderr or "another data" in done.stderr
        assert [(t.number, t.state) for t in trials(storage)] == [(t.number, t.state) for t in stored]


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 10))


def test_tune_refuses_to_resume_with_other_weights_or_other_samples(tmp_path):
    model, storage = _tiny_model(), f"sqlite:///{tmp_path / 't.db'}"
    x, y = torch.randn(24, 1, 8, 8), torch.randint(0, 10, (24,))
    options = dict(n_trials=2, n_samples=4, storage=storage, study_name="t", show_progress_bar=False, pruner="none")
    run_tune(LRPUniformEpsilon, model, (x, y), **options)
    before = [(t.number, t.state) for t in trials(storage, "t")]
    recorded = optuna.load_study(study_name="t", storage=storage).user_attrs
    assert {"model", "data"} <= recorded.keys()
    other = _tiny_model()
    with torch.no_grad():
        other[0].weight.add_(1e-3)
    with pytest.raises(StudyMismatchError, match="another model"):
        run_tune(LRPUniformEpsilon, other, (x, y), **{**options, "n_trials": 4})
    with pytest.raises(StudyMismatchError, match="another data"):
        run_tune(LRPUniformEpsilon, model, (x + 1, y), **{**options, "n_trials": 4})
    assert [(t.number, t.state) for t in trials(storage, "t")] == before


# -- interrupted defaults, SIGTERM -----------------------------------------------------------------------------
def _first_trial_running(storage: str) -> bool | None:
    """Whether trial 0 is running; None while the study cannot be read (not created yet, or the worker holds
    SQLite's write lock)."""
    import sqlalchemy.exc

    try:
        stored = trials(storage)
    except (KeyError, sqlalchemy.exc.OperationalError, optuna.exceptions.StorageInternalError):
        return None
    return bool(stored) and stored[0].state == TrialState.RUNNING if stored else None


def _freeze_in_first_trial(process: subprocess.Popen, storage: str) -> None:
    """SIGSTOP the process while trial 0 (the default configuration) runs and the study is readable (a worker
    frozen while it holds SQLite's write lock is let go on, and caught again)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if _first_trial_running(storage):
            process.send_signal(signal.SIGSTOP)
            running = _first_trial_running(storage)
            if running:
                return
            process.send_signal(signal.SIGCONT)
            assert running is None, "trial 0 finished before the process could be frozen in it; use more samples"
        time.sleep(0.05)
    raise TimeoutError("trial 0 never ran")


def test_a_signal_while_the_result_is_stored_fails_the_trial_at_once(monkeypatch):
    """Ctrl-C (or SIGTERM) landing while Optuna stores a trial's result escapes Optuna's own handling; the trial is
    failed at once rather than left running until its heartbeat goes stale, and the error goes on (Optuna 5.1 raises
    an UnboundLocalError from its clean-up, the interrupt as its context)."""
    from tuner.search._budget import Budget, optimize

    study = optuna.create_study()
    real_tell = optuna.study._optimize._tell_with_warning
    calls = []

    def interrupted_tell(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_tell(*args, **kwargs)

    monkeypatch.setattr(optuna.study._optimize, "_tell_with_warning", interrupted_tell)
    with pytest.raises(BaseException) as raised:
        optimize(study, lambda t: t.suggest_float("x", 0, 1), Budget(n_trials=3), show_progress_bar=False, catch=())
    assert isinstance(raised.value, KeyboardInterrupt) or isinstance(raised.value.__context__, KeyboardInterrupt)
    assert [trial.state for trial in study.get_trials()] == [TrialState.FAIL]


@pytest.mark.slow  # a subprocess of the command line
@pytest.mark.parametrize("sent, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_default_interrupted_by_ctrl_c_or_sigterm_is_run_again(sent, code, word, trained_digits, tmp_path):
    storage = f"sqlite:///{tmp_path / 'c.db'}"
    command = run_command(storage, n_samples=256)
    first = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=worker_env(), cwd=tmp_path
    )
    try:
        _freeze_in_first_trial(first, storage)
        first.send_signal(sent)
        first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == code and word in err and "Traceback" not in err, err
    stored = trials(storage)
    assert stored[0].state == TrialState.FAIL  # at once, not after the heartbeat
    assert stored[0].user_attrs.get("default_configuration") and TrialState.RUNNING not in [t.state for t in stored]

    again = subprocess.run(command, capture_output=True, text=True, env=worker_env(), cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr
    stored = trials(storage)
    defaults = [t for t in stored if t.user_attrs.get("default_configuration")]
    assert [t.state for t in defaults] == [TrialState.FAIL, TrialState.COMPLETE]
    # the rerun is the same configuration (the interrupted trial recorded it, or was stopped before it could)
    assert defaults[0].params in ({}, defaults[1].params) and defaults[1].params
    assert [t.state for t in stored].count(TrialState.COMPLETE) == 3


def test_a_signal_swallowed_by_a_garbage_collector_callback_prints_no_traceback():
    """A SIGTERM can land in a callback Python cannot raise from (SQLAlchemy's pool clean-up): the exception is
    kept for the next check, and stderr gets no "Exception ignored ... Traceback"; other such errors still print."""
    import types

    from tuner.cli._errors import Terminated
    from tuner.cli._main import _quiet_unraisable
    from tuner.search._interrupt import RECEIVED

    seen = []
    hook = _quiet_unraisable(seen.append)
    RECEIVED.append(Terminated())
    try:
        hook(types.SimpleNamespace(exc_value=RECEIVED[-1]))
        other = types.SimpleNamespace(exc_value=RuntimeError("a real fault"))
        hook(other)
    finally:
        RECEIVED.clear()
    assert seen == [other]


# -- read-only commands, bad input -----------------------------------------------------------------------------
@pytest.mark.slow  # a subprocess of the command line
@pytest.mark.parametrize("command", ["best", "dashboard"])
@pytest.mark.parametrize("storage", ["sqlite:///{tmp}/typo/studies.db", "{tmp}/typo/journal.log"])
def test_read_only_commands_never_create_a_storage(command, storage, tmp_path):
    url = storage.replace("{tmp}", str(tmp_path))
    extra = ["--study-name", "s"] if command == "best" else ["--port", "1"]
    done = cli(command_line(command, *extra, storage=url), cwd=tmp_path, timeout=120)
    one_clear_line(done)
    assert "no study storage" in done.stderr
    assert not (tmp_path / "typo").exists()


def _digit_folder(tmp_path: Path, n: int = 6) -> Path:
    from sklearn.datasets import load_digits

    folder = tmp_path / "digits"
    folder.mkdir()
    for index, image in enumerate(load_digits().images[:n]):
        Image.fromarray((image * 255 / 16).astype("uint8"), mode="L").save(folder / f"{index}.png")
    return folder


@pytest.mark.slow  # a subprocess of the command line
def test_n_samples_beyond_the_data_and_a_timeout_say_what_happened(trained_digits, tmp_path):
    storage = f"sqlite:///{tmp_path / 'd.db'}"
    done = run(
        storage, "--data", str(_digit_folder(tmp_path)), "--timeout", "1", cwd=tmp_path, n_samples=100000, n_trials=500
    )
    assert done.returncode == 0, done.stderr
    assert "--n-samples 100000 is more than the data holds: tuning on all 6 samples, 0 held out" in done.stderr
    complete = count(storage, TrialState.COMPLETE)
    assert 0 < complete < 500
    assert f"stopped by the timeout of 1s: {complete} of 500 trials complete" in done.stderr
    assert optuna.load_study(study_name="s", storage=storage).user_attrs["n_samples"] == 6


@pytest.mark.slow  # a subprocess of the command line
@pytest.mark.parametrize(
    "args, message",
    [
        (["--objectives", "abpc,abpc"], "more than once"),
        (["--timeout", "-5"], "positive number of seconds"),
        (["--timeout", "nan"], "positive number of seconds"),
    ],
)
def test_bad_arguments_store_nothing(args, message, tmp_path):
    done = run(f"sqlite:///{tmp_path / 'e.db'}", *args, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "e.db").exists()


@pytest.mark.slow  # a subprocess of the command line
@pytest.mark.parametrize("name", ["corrupt.db", "corrupt.log"])
def test_a_corrupt_storage_file_is_named_and_left_as_it_was(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(b"{not json, not SQLite\n" * 50)
    url = f"sqlite:///{path}" if name.endswith(".db") else str(path)
    done = run(url, cwd=tmp_path)
    one_clear_line(done)
    assert str(path) in done.stderr and "corrupt" in done.stderr
    assert path.read_bytes() == b"{not json, not SQLite\n" * 50


@pytest.mark.slow  # a subprocess of the command line
def test_a_corrupt_weights_file_is_named_without_unsafe_advice(tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"\x80\x04garbage" * 40)
    done = run(f"sqlite:///{tmp_path / 'f.db'}", "--weights", str(weights), cwd=tmp_path)
    one_clear_line(done)
    assert str(weights) in done.stderr and "weights_only" not in done.stderr
    assert not (tmp_path / "f.db").exists()


# -- secrets ---------------------------------------------------------------------------------------------------
PASSWORDS = ["p@ss", "pa:ss", "pa/ss", "pass word", "p%40ss%2Fw", "a@b:c/d e%20f"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_storage_password_is_masked_whatever_it_holds(password):
    url = f"postgresql://user:{password}@db.example:5432/studies?sslmode=require"
    assert mask_url(url) == "postgresql://user:***@db.example:5432/studies?sslmode=require"
    message = f"connection to {url} failed for password {password} ({optuna.__name__})"
    assert password not in redact(message, url)
    study = optuna.create_study()
    record_storage(study, url)
    assert password not in str(study.user_attrs) and "user:***@db.example" in study.user_attrs["storage"]


@pytest.mark.slow  # a subprocess of the command line
def test_an_unreachable_storage_error_shows_no_part_of_the_password(tmp_path):
    secret = "s3@c:r/e t%40X"
    done = run(f"postgresql://user:{secret}@127.0.0.1:1/db", cwd=tmp_path)
    one_clear_line(done)
    for piece in ("s3", "r/e", "t%40X", "e t"):
        assert piece not in done.stderr + done.stdout, done.stderr
    assert "user:***@127.0.0.1:1/db" in done.stderr


@pytest.mark.slow  # a subprocess of the command line
@pytest.mark.parametrize("secret", ["Se@cret@pw", "Se/cret/pw", "Se cret pw"])
def test_a_raw_at_slash_or_space_in_a_password_is_refused_without_a_fragment(secret, tmp_path):
    done = run(f"postgresql://u:{secret}@127.0.0.1:1/db", cwd=tmp_path)
    one_clear_line(done)
    assert "percent-encode" in done.stderr
    for piece in ("Se", "cret", "pw"):
        assert piece not in done.stderr + done.stdout, done.stderr
    assert not list(tmp_path.iterdir())  # nothing stored


def test_a_drivers_message_is_shown_without_any_part_of_the_user_information():
    url = "postgresql://analyst:h%40rd@db.example/studies"
    error = RuntimeError('password authentication failed for user "analyst" (password h@rd)\nsecond line')
    line = _first_line(error, url)
    assert "analyst" not in line and "h@rd" not in line and "h%40rd" not in line
    assert line.startswith("password authentication failed") and "second line" not in line


# -- tune(): validated before any study; the model returned as it came --------------------------------------------
@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"targets": 15}, ValueError, "out of range"),
        ({"targets": -1}, ValueError, "out of range"),
        ({"targets": 1.5}, ValueError, "integer class indices"),
        ({"inputs": float("nan")}, ValueError, "NaN or infinite"),
        ({"model": "resnet50"}, TypeError, "torch.nn.Module"),
        ({"model": lambda x: x}, TypeError, "torch.nn.Module"),
        ({"timeout": -5}, ValueError, "timeout"),
        ({"n_trials": 0}, ValueError, "n_trials"),
        ({"n_samples": 2.5}, TypeError, "n_samples"),
        ({"n_heatmaps": -1}, ValueError, "n_heatmaps"),
        ({"metric": ["abpc", "abpc"]}, ValueError, "only once"),
        ({"explainer_kwargs": {"epsilom": 0.1}}, ValueError, "'epsilom' are not parameters of LRPUniformEpsilon"),
    ],
)
def test_tune_checks_its_input_before_any_study_exists(change, error, message, tmp_path):
    x, y = torch.randn(12, 1, 8, 8), torch.randint(0, 10, (12,))
    if "targets" in change:
        y = torch.full((12,), change.pop("targets"))
    if "inputs" in change:
        x[::3, 0, 2, 2] = change.pop("inputs")  # a third of the samples: some are among those chosen
    model = change.pop("model", _tiny_model())
    storage = tmp_path / "g.db"
    with pytest.raises(error, match=message):
        run_tune(
            LRPUniformEpsilon,
            model,
            (x, y),
            **{"n_trials": 2, "n_samples": 4, "storage": f"sqlite:///{storage}", "show_progress_bar": False, **change},
        )
    assert not storage.exists()


def _state(model: nn.Module):
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        hook_count(model),
        {k: v.clone() for k, v in model.state_dict().items()},
    )


def _same(before, after) -> bool:
    return before[:3] == after[:3] and all(torch.equal(before[3][k], after[3][k]) for k in before[3])


def test_explainers_and_tune_return_the_model_as_it_came_also_on_error():
    model = _tiny_model().train()
    model[0].weight.requires_grad_(False)
    model[4].register_forward_hook(lambda module, args, output: None)
    before = _state(model)
    x, y = torch.randn(12, 1, 8, 8), torch.randint(0, 10, (12,))
    explainer = LRPEpsilonGammaBox(model, low=-4.0, high=4.0)
    explainer.attribute(x[:2], y[:2])
    assert _same(before, _state(model))
    with pytest.raises(ValueError, match="out of range"):
        explainer.attribute(x[:2], torch.tensor([0, 99]))
    assert _same(before, _state(model))
    result = run_tune(LRPUniformEpsilon, model, (x, y), n_trials=2, n_samples=4, show_progress_bar=False)
    assert _same(before, _state(model))
    result.summary()  # scores after run_tune() run the model in eval mode and leave it in training mode
    assert _same(before, _state(model))
    with pytest.raises(ValueError):
        run_tune(LRPUniformEpsilon, model, (x, torch.full((12,), 42)), n_trials=2, n_samples=4, show_progress_bar=False)
    assert _same(before, _state(model))


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_explainer_parameters_are_refused(value):
    explainer = LRPEpsilonGammaBox(_tiny_model())
    for name in ("epsilon", "stabilizer", "gamma", "low"):
        with pytest.raises(ValueError, match=name):
            explainer.set_kwargs(**{name: value})


def test_a_study_in_the_former_default_storage_is_pointed_out(tmp_path, monkeypatch):
    """The default storage moved into the output folder: a user with ./tuner.db is told how to resume it."""
    from tuner.storage._open import DEFAULT_STORAGE, former_default_note

    monkeypatch.chdir(tmp_path)
    assert former_default_note(DEFAULT_STORAGE) is None  # nothing there
    (tmp_path / "tuner.db").write_bytes(b"")
    note = former_default_note(DEFAULT_STORAGE)
    assert note is not None and "--storage sqlite:///tuner.db" in note and "\n" not in note
    assert former_default_note("sqlite:///other.db") is None  # a storage the user chose
    (tmp_path / "lrp-tuner-out").mkdir()
    (tmp_path / "lrp-tuner-out" / "tuner.db").write_bytes(b"")
    assert former_default_note(DEFAULT_STORAGE) is None  # the new default is in use already


def test_a_signal_inside_signals_deferred_is_delivered_at_its_end():
    """A Ctrl-C inside the block (the trial loop's storage calls) is held until its end, then raised as usual."""
    from tuner.search._interrupt import signals_deferred

    steps = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            signal.raise_signal(signal.SIGINT)
            steps.append("after the signal")
    assert steps == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back


def test_a_signal_inside_a_storage_call_of_the_trial_loop_waits_for_a_safe_point(monkeypatch):
    """A Ctrl-C landing inside a storage call (here: while Optuna creates a trial) is held: the call and the
    objective's bookkeeping complete, the trial is then failed (not left running) and no other trial is created."""
    from tuner.search._budget import Budget, optimize

    study = optuna.create_study()
    real_init = optuna.trial.Trial.__init__
    created = []

    def interrupted_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)  # the trial exists in the storage, running
        created.append(1)
        if len(created) == 1:
            signal.raise_signal(signal.SIGINT)

    steps = []

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        trial.set_user_attr("seen", len(trial.study.get_trials()))  # storage calls with the signal held
        steps.append("stored")
        return x

    monkeypatch.setattr(optuna.trial.Trial, "__init__", interrupted_init)
    with pytest.raises(KeyboardInterrupt):
        optimize(study, objective, Budget(n_trials=3), show_progress_bar=False, catch=())
    assert steps == ["stored"]
    assert [(trial.state, trial.user_attrs) for trial in study.get_trials()] == [(TrialState.FAIL, {"seen": 1})]
    assert "ask" not in vars(study)  # Optuna's own ask is back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_signal_in_the_computation_stops_the_trial_at_once_and_fails_it():
    """Inside signals_allowed (attributions, metrics) a Ctrl-C raises where it lands; the trial is failed."""
    from tuner.search._budget import Budget, optimize
    from tuner.search._interrupt import signals_allowed

    study = optuna.create_study()
    steps = []

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        with signals_allowed():
            signal.raise_signal(signal.SIGINT)
            steps.append("after the signal")
        return x

    with pytest.raises(KeyboardInterrupt):
        optimize(study, objective, Budget(n_trials=3), show_progress_bar=False, catch=())
    assert steps == [] and [trial.state for trial in study.get_trials()] == [TrialState.FAIL]


def test_signals_allowed_delivers_the_held_signals_first_and_a_repeated_signal_is_not_held():
    from tuner.search._interrupt import signals_allowed, signals_deferred

    steps = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            signal.raise_signal(signal.SIGINT)
            steps.append("held")
            with signals_allowed():
                steps.append("not reached")
    assert steps == ["held"]
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            signal.raise_signal(signal.SIGINT)
            steps.append("held again")
            signal.raise_signal(signal.SIGINT)  # the user insists
            steps.append("not reached")
    assert steps == ["held", "held again"]
    with signals_allowed():  # outside a signals_deferred block: nothing to deliver, nothing changed
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
