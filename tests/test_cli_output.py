"""What a user of the command line reads: help texts, the progress bar, quiet output, Ctrl-C."""

import argparse
import sys

import pytest

from tuner.cli import _main as cli
from tuner.cli import _parser as _cli_parser
from tuner.cli import command_line


def _subparser(name: str) -> argparse.ArgumentParser:
    commands = next(a for a in _cli_parser.parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


def test_dashboard_help_documents_every_option_with_its_default(capsys):
    options = [a for a in _subparser("dashboard")._actions if a.option_strings and a.dest != "help"]
    assert {a.dest for a in options} == {"storage", "host", "port", "artifact_dir"}
    for action in options:
        assert action.help and "default" in action.help, action.dest
    with pytest.raises(SystemExit) as exit_:
        cli.main(["dashboard", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")  # argparse wraps lines, also after a hyphen
    defaults = ("(default: sqlite:///lrp-tuner-out/tuner.db)", "(default: 127.0.0.1", "(default: 8080)")
    for shown in (*defaults, "--artifact-dir"):
        assert shown in text


def test_command_line_puts_flags_first_then_each_option_as_its_flag():
    python = [sys.executable, "-m", "tuner"]
    argv = command_line("run", "--no-report", n_trials=6, study_name="s", no_progress=True, out=None, no_panel=False)
    assert argv == [*python, "run", "--no-report", "--n-trials", "6", "--study-name", "s", "--no-progress"]
    assert command_line("best") == [*python, "best"]


# -- quiet output, Ctrl-C --------------------------------------------------------------------------------------
def test_importance_warnings_become_debug_lines(monkeypatch, caplog):
    """Optuna's importance evaluator warns about few trials in every small run: a debug line, not a warning."""
    import importlib
    import logging
    import warnings

    import optuna

    from tuner.evidence import _result

    def warns(study):
        warnings.warn("too few trials for a reliable importance", UserWarning, stacklevel=1)
        return {"x": 0.5}

    importance = importlib.import_module("optuna.importance")  # the module behind optuna's lazy attribute
    monkeypatch.setattr(importance, "get_param_importances", warns)
    study = optuna.create_study()
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    with warnings.catch_warnings(record=True) as shown, caplog.at_level(logging.DEBUG, logger="tuner"):
        warnings.simplefilter("always")
        assert _result._importances(study.trials, study.directions) == {"x": 0.5}
    assert not shown
    assert "too few trials for a reliable importance" in caplog.text


@pytest.mark.slow  # a subprocess of the command line
@pytest.mark.parametrize("verbose", [False, True])
def test_matplotlib_font_cache_message_only_with_verbose(verbose, tmp_path):
    """A first run builds matplotlib's font cache and logs "generated new fontManager": not for CLI users."""
    import os
    import subprocess
    import sys

    code = (
        f"from tuner.cli._main import configure_output; configure_output(verbose={verbose}); import matplotlib.pyplot"
    )
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path)}  # an empty cache: matplotlib builds it now
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ("fontManager" in done.stderr) == verbose, done.stderr


def test_library_warnings_only_with_verbose():
    import logging
    import warnings

    for verbose in (False, True):
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            cli.configure_output(verbose=verbose)
            warnings.warn_explicit("noise", UserWarning, "importance.py", 1, module="optuna.importance._base")
            warnings.warn_explicit("noise", UserWarning, "font_manager.py", 1, module="matplotlib.font_manager")
        assert len(shown) == (2 if verbose else 0)
        assert logging.getLogger("sqlalchemy.pool").isEnabledFor(logging.ERROR) == verbose
    cli.configure_output(verbose=False)


class _DriverError(Exception):
    """Like psycopg's OperationalError when Ctrl-C cuts a PostgreSQL call."""


def _interrupted_driver():
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        raise _DriverError("server closed the connection unexpectedly") from None


@pytest.mark.parametrize("raised", ["ctrl-c", "driver", "value-error-after-ctrl-c"])
def test_ctrl_c_anywhere_in_run_is_one_line_without_traceback(raised, monkeypatch, capsys):
    def interrupted_run(args):
        if raised == "ctrl-c":
            raise KeyboardInterrupt  # e.g. while the report draws its figures
        if raised == "driver":
            _interrupted_driver()  # raised while Ctrl-C was being handled (its context is the KeyboardInterrupt)
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise ValueError("half-written") from interrupt

    monkeypatch.setattr(cli, "run", interrupted_run)
    assert cli.main(["run"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("interrupted:") and "Traceback" not in err, err


def test_a_trial_stopped_by_ctrl_c_is_not_logged_by_optuna():
    import logging
    import sys

    cli.configure_output(verbose=True)
    handler = logging.getLogger("optuna").handlers[0]
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        interrupted = logging.LogRecord("optuna", logging.WARNING, "f", 1, "Trial 0 failed", None, sys.exc_info())
    failed = logging.LogRecord("optuna", logging.WARNING, "f", 1, "Trial 1 failed", None, None)
    assert not handler.filter(interrupted) and handler.filter(failed)
    cli.configure_output(verbose=False)


def test_an_error_after_a_signal_that_lost_its_context_is_still_one_line(monkeypatch, capsys):
    """SIGTERM during a database commit: Optuna's own error (its context lost) still ends in the one line."""
    import os
    import signal

    def signalled_run(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next line
        except KeyboardInterrupt:
            pass  # swallowed, as a failed commit does
        raise AssertionError("Should not reach.")

    monkeypatch.setattr(cli, "run", signalled_run)
    assert cli.main(["run"]) == cli.EXIT_TERMINATED
    err = capsys.readouterr().err
    assert err.startswith("terminated:") and err.count("\n") == 1, err


def test_ctrl_c_closes_the_dashboard_with_one_line(monkeypatch, capsys, tmp_path):
    import optuna_dashboard

    def interrupted_server(*args, **kwargs):
        raise KeyboardInterrupt

    storage = f"sqlite:///{tmp_path / 's.db'}"
    import optuna

    optuna.create_study(storage=storage, study_name="s")
    monkeypatch.setattr(optuna_dashboard, "run_server", interrupted_server)
    assert cli.main(["dashboard", "--storage", storage]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "dashboard stopped" and "Traceback" not in err and "trial" not in err, err
