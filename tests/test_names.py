"""Unknown names get one line that lists the valid ones and suggests the closest; error lines name the command as
the user typed it."""

import subprocess

import pytest

from explainers import get_explainer
from metrics import get_metric
from studies import get_preset
from tuner.cli import command_line


@pytest.mark.parametrize(
    "lookup, typo, suggestion",
    [
        (get_explainer, "epsilon_gama_box", "epsilon_gamma_box"),
        (get_metric, "abcp", "abpc"),
        (get_preset, "resnt50", "resnet50"),
    ],
)
def test_an_unknown_name_suggests_the_closest_valid_one(lookup, typo, suggestion):
    with pytest.raises(ValueError) as raised:
        lookup(typo)
    message = str(raised.value)
    assert f"did you mean {suggestion!r}?" in message and "\n" not in message


def test_a_name_far_from_every_valid_one_gets_no_suggestion():
    with pytest.raises(ValueError) as raised:
        get_metric("zzzzzzzz")
    assert "did you mean" not in str(raised.value) and "abpc" in str(raised.value)


def test_a_bad_flag_names_the_command_as_typed():
    done = subprocess.run(command_line("run", n_trials=0), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "see python -m tuner run --help" in done.stderr and "lrp-tuner" not in done.stderr


def test_the_command_line_checks_a_metric_name_with_the_registry(tmp_path):
    done = subprocess.run(
        command_line("run", metric="abcp", storage="sqlite:///unused.db"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "unknown metric 'abcp'; did you mean 'abpc'?" in done.stderr
    assert not list(tmp_path.iterdir())  # refused before any storage exists
