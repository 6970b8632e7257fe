"""What a user of the command line reads: help texts, the progress bar, quiet output, Ctrl-C."""
import argparse

import pytest

from tuner import cli


def _subparser(name: str) -> argparse.ArgumentParser:
    commands = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


def test_dashboard_help_documents_every_option_with_its_default(capsys):
    options = [a for a in _subparser("dashboard")._actions if a.option_strings and a.dest != "help"]
    assert {a.dest for a in options} == {"storage", "host", "port", "artifact_dir"}
    for action in options:
        assert action.help and "default" in action.help, action.dest
    with pytest.raises(SystemExit) as exit_:
        cli.main(["dashboard", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for shown in ("(default: sqlite:///tuner.db)", "(default: 127.0.0.1", "(default: 8080)", "--artifact-dir"):
        assert shown in text
