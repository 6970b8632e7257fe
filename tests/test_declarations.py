"""Each explainer declares its parameters and each metric its settings once (``PARAMETERS``, ``SETTINGS``); the
library reads the declarations, never the constructors' signatures. These tests keep the two in step."""

import inspect

import pytest

from explainers import COMMON_OPTIONS, EXPLAINERS, LRPBase
from metrics import METRICS
from metrics.perturbation import PerturbationMetric
from metrics.perturbation._engine import COMMON_OPTIONS as METRIC_OPTIONS

VARIADIC = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)


@pytest.mark.parametrize("cls", [LRPBase, *EXPLAINERS.values()], ids=lambda cls: cls.__name__)
def test_an_explainers_declared_parameters_are_its_constructors(cls):
    signature = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, model
    declared = [(p.name, p.default) for p in signature if p.kind not in VARIADIC and p.name not in COMMON_OPTIONS]
    assert declared == list(cls.PARAMETERS.items())
    assert cls.parameter_names() == ("model", *cls.PARAMETERS, *COMMON_OPTIONS)


def test_the_shared_options_are_the_base_constructors_keyword_only_arguments():
    keyword_only = [p.name for p in inspect.signature(LRPBase.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY]
    assert keyword_only == list(COMMON_OPTIONS)
    perturbation = [
        p.name for p in inspect.signature(PerturbationMetric.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY
    ]
    assert perturbation == list(METRIC_OPTIONS)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_a_metrics_declared_settings_are_its_constructors(name):
    cls = METRICS[name]
    signature = list(inspect.signature(cls.__init__).parameters.values())[1:]
    own = [p.name for p in signature if p.kind not in VARIADIC and p.name != "model"]
    assert own == list(cls.SETTINGS)
    if issubclass(cls, PerturbationMetric):
        assert cls.accepted_settings() == frozenset(cls.SETTINGS) | frozenset(METRIC_OPTIONS)
        with pytest.raises(TypeError, match="unexpected keyword argument 'n_stepz'"):
            cls(None, n_stepz=3)  # a typo in a setting is refused, not dropped
