"""Unknown names get one line that lists the valid ones and suggests the closest; error lines name the command as
the user typed it."""

import importlib.metadata
import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

import explainers._registry as explainer_registry
import metrics._registry as metric_registry
from explainers import EXPLAINERS, LRPUniformEpsilon, get_explainer
from metrics import METRICS, Metric, get_metric
from registry import Registry
from studies import available_presets, get_preset
from tuner._options import Search
from tuner.cli import command_line
from tuner.search._strategies import PRUNERS, SAMPLERS, make_pruner


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


@pytest.mark.slow  # a subprocess of the command line
def test_a_bad_flag_names_the_command_as_typed():
    done = subprocess.run(command_line("run", n_trials=0), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "see python -m tuner run --help" in done.stderr and "lrp-tuner" not in done.stderr


@pytest.mark.slow  # a subprocess of the command line
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


@pytest.mark.parametrize(
    "kind, lookup, typo, suggestion, valid",
    [
        ("explainer", get_explainer, "epsilon_gama_box", "epsilon_gamma_box", lambda: list(EXPLAINERS)),
        ("metric", get_metric, "abcp", "abpc", lambda: list(METRICS)),
        ("preset", get_preset, "resnt50", "resnet50", available_presets),
        ("sampler", lambda name: Search(sampler=name), "tpee", "tpe", lambda: list(SAMPLERS)),
        ("pruner", lambda name: Search(pruner=name), "wilcoxn", "wilcoxon", lambda: list(PRUNERS)),
        ("pruner", lambda name: make_pruner(name, 1), "medain", "median", lambda: list(PRUNERS)),
    ],
)
def test_every_kind_names_the_closest_and_the_valid_names_in_one_line(kind, lookup, typo, suggestion, valid):
    with pytest.raises(ValueError) as raised:
        lookup(typo)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"unknown {kind} {typo!r}; did you mean {suggestion!r}? valid names: ")
    assert f"valid names: {', '.join(valid())}" in message


def _plugin(tmp_path, monkeypatch, group: str, source: str, **entry_points: str) -> None:
    """Install a module ``lrp_tuner_names_plugin`` and entry points ``name=attribute`` in ``group``."""
    (tmp_path / "lrp_tuner_names_plugin.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lrp_tuner_names_plugin", raising=False)
    found = [
        EntryPoint(name=name, value=f"lrp_tuner_names_plugin:{attribute}", group=group)
        for name, attribute in entry_points.items()
    ]
    wanted = group
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: found if group == wanted else [])


def test_an_explainer_plug_in_is_found_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(explainer_registry, "EXPLAINERS", EXPLAINERS.copy())
    source = "from explainers import LRPUniformEpsilon\nclass Plugged(LRPUniformEpsilon):\n    pass\n"
    _plugin(tmp_path, monkeypatch, "lrp_tuner.explainers", source, plugged="Plugged", broken="Missing")
    assert "plugged" in explainer_registry.EXPLAINERS.names()
    assert "lrp_tuner_names_plugin" not in sys.modules  # listing does not import plug-ins
    plugged = get_explainer("plugged")
    assert plugged.__name__ == "Plugged" and issubclass(plugged, LRPUniformEpsilon)
    assert get_explainer("plugged") is plugged and "plugged" in explainer_registry.EXPLAINERS
    with pytest.raises(ValueError, match="explainer 'broken' from entry point .* failed to load") as raised:
        get_explainer("broken")
    assert "\n" not in str(raised.value)
    with pytest.raises(ValueError, match="did you mean 'plugged'"):
        get_explainer("pluged")


def test_a_metric_plug_in_is_found_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(metric_registry, "METRICS", METRICS.copy())
    source = "from metrics import Sparseness\nclass Plugged(Sparseness):\n    pass\nNOT_A_METRIC = 3\n"
    _plugin(tmp_path, monkeypatch, "lrp_tuner.metrics", source, plugged="Plugged", wrong="NOT_A_METRIC")
    metric = get_metric("plugged")
    assert type(metric).__name__ == "Plugged" and isinstance(metric, Metric)
    with pytest.raises(ValueError, match="metric 'wrong' from entry point .* failed to load .*not a Metric class"):
        get_metric("wrong")
    assert "plugged" in metric_registry.METRICS and "wrong" not in metric_registry.METRICS


def test_a_taken_name_is_refused_unless_overwritten():
    things: Registry[object] = Registry("thing")
    first, second = object(), object()

    @things.register("a", aliases=("alpha",))
    def a():
        return 1

    things.add("b", first)
    assert things.add("b", first) is first  # the same item again is no change
    with pytest.raises(ValueError, match="a thing named 'b' is already registered"):
        things.add("b", second)
    with pytest.raises(ValueError, match="a thing named 'alpha' is already registered"):
        things.add("c", second, aliases=("alpha",))
    assert things.get("b") is first and "c" not in things
    assert things.add("b", second, overwrite=True) is second and things["b"] is second
    assert list(things) == ["a", "b"] and things.get("alpha") is a and "alpha" not in things
    with pytest.raises(ValueError, match="^unknown thing 'z'; valid names: a, b$"):
        things.get("z")


def test_the_registries_keep_their_order():
    assert list(EXPLAINERS) == [
        "uniform_epsilon",
        "epsilon_gamma_box",
        "epsilon_plus",
        "epsilon_alpha2_beta1",
        "layerwise",
    ]
    assert list(SAMPLERS) == ["tpe", "random", "grid", "gp", "cmaes"]
    assert list(PRUNERS) == ["wilcoxon", "median", "none"]
