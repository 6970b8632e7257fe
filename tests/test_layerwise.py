"""Properties of LRPLayerwise: the layer groups, the conditional search space, value semantics, the four variants
reproduced exactly, conservation, the model left untouched, and a tune() run over the conditional space."""

import copy

import optuna
import pytest
import torch
import torchvision
from helpers import hook_count, randomise_batch_norm, run_tune, zero_biases
from torch import nn
from zennit.types import Convolution

import explainers
from explainers import LRPLayerwise
from explainers._layerwise import GROUPS, INPUT_RULES, RULES, layer_groups

UNIT = {"low": 1e-6, "high": 1.0, "log": True}
VGG_CFG = [8, "M", 16, "M", 16, 16, "M", 32, 32, "M", 32, 32]  # 8 convolutions


def _conv_names(model: nn.Module):
    return [name for name, module in model.named_modules() if isinstance(module, Convolution)]


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(1)
    model = torchvision.models.VGG(torchvision.models.vgg.make_layers(VGG_CFG, batch_norm=True))
    model.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    model.classifier = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 10))
    return randomise_batch_norm(model).eval()


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(2)
    return torch.randn(3, 3, 32, 32), torch.tensor([1, 4, 7])


# -- the groups --------------------------------------------------------------------------------------------
def test_groups_on_resnet18(resnet):
    groups = LRPLayerwise(resnet).groups()
    assert list(groups) == list(GROUPS)
    assert {group: len(names) for group, names in groups.items()} == {
        "input": 1,
        "lower": 7,
        "middle": 6,
        "upper": 6,
        "dense": 1,
    }
    assert groups["input"] == ["conv1"] and groups["dense"] == ["fc"]
    # the thirds follow registration order: layer1 is lower, layer4 upper, the shortcut convolutions included
    assert groups["lower"][0] == "layer1.0.conv1" and groups["upper"][-1] == "layer4.1.conv2"
    assert "layer2.0.downsample.0" in groups["lower"] + groups["middle"]
    convolutions = groups["input"] + groups["lower"] + groups["middle"] + groups["upper"]
    assert convolutions == _conv_names(resnet)  # every convolution exactly once, in order


def test_groups_on_vgg(vgg):
    groups = LRPLayerwise(vgg).groups()
    assert {group: len(names) for group, names in groups.items()} == {
        "input": 1,
        "lower": 3,
        "middle": 2,
        "upper": 2,
        "dense": 2,
    }
    assert groups["input"] + groups["lower"] + groups["middle"] + groups["upper"] == _conv_names(vgg)
    assert groups["dense"] == ["classifier.0", "classifier.3"]


@pytest.mark.parametrize("n_convolutions", range(1, 9))
def test_thirds_cover_every_convolution_once_and_empty_groups_leave_the_search_space(n_convolutions):
    layers = [nn.Conv2d(2, 2, 3, padding=1) for _ in range(n_convolutions)]
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    groups = layer_groups(model)
    thirds = [groups[group] for group in ("lower", "middle", "upper")]
    assert [module for _, module in groups["input"]] == layers[:1]
    assert [module for third in thirds for _, module in third] == layers[1:]
    sizes = [len(third) for third in thirds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)

    tunables = LRPLayerwise(model, input_rule="epsilon").get_tunables()
    for group, modules in groups.items():
        assert (f"{group}_rule" in tunables) == bool(modules)
        assert (f"{group}_gamma" in tunables) == bool(modules)
    assert set(LRPLayerwise.TUNABLES) == {
        f"{group}_{name}" for group in GROUPS for name in ("rule", "epsilon", "gamma")
    }
    attribution = LRPLayerwise(model).attribute(torch.randn(2, 2, 4, 4), torch.tensor([0, 2]))
    assert attribution.shape == (2, 2, 4, 4) and attribution.abs().sum() > 0


# -- the search space --------------------------------------------------------------------------------------
def test_tunables_are_categoricals_then_their_conditional_parameters(resnet):
    explainer = LRPLayerwise(resnet)
    tunables, conditions = explainer.get_tunables(), explainer.get_conditions()
    assert tunables == LRPLayerwise.TUNABLES  # every group is present on a ResNet
    names = list(tunables)
    trial = optuna.create_study().ask()
    for group in GROUPS:
        kind, spec = tunables[f"{group}_rule"]
        assert kind is str and spec == {"choices": list(INPUT_RULES if group == "input" else RULES)}
        for rule in ("epsilon", "gamma"):
            kind, spec = tunables[f"{group}_{rule}"]
            assert kind is float and spec == UNIT
            trial.suggest_float(f"{group}_{rule}", **spec)  # the (type, kwargs) form Optuna takes as it is
            assert conditions[f"{group}_{rule}"] == {f"{group}_rule": [rule]}
            assert names.index(f"{group}_rule") < names.index(f"{group}_{rule}")
    assert {"zbox", "flat"} <= set(tunables["input_rule"][1]["choices"])
    assert not {"zbox", "flat"} & set(tunables["upper_rule"][1]["choices"])
    # a copy: changing the returned space does not change the class's
    tunables["lower_gamma"][1]["low"] = 0.5
    assert LRPLayerwise.TUNABLES["lower_gamma"][1]["low"] == 1e-6


def test_defaults_document_and_validate(resnet):
    explainer = LRPLayerwise(resnet)
    assert (explainer.input_rule, explainer.lower_rule, explainer.dense_rule) == ("zbox", "gamma", "epsilon")
    assert repr(explainer).startswith("LRPLayerwise(model=ResNet, low=-3.0, high=3.0, input=GroupRule(rule='zbox'")
    with pytest.raises(ValueError, match="lower_rule must be one of"):
        LRPLayerwise(resnet, lower_rule="zbox")  # z-box is for the input layer only
    with pytest.raises(ValueError, match="dense_gamma"):
        LRPLayerwise(resnet, dense_gamma=-1.0)
    with pytest.raises(ValueError, match="low must be below high"):
        LRPLayerwise(resnet, low=1.0, high=0.0)
    with pytest.raises(TypeError, match="unknown parameter"):
        explainer.set_kwargs(gamma=0.5)


def test_set_kwargs_rebuilds_the_rules_and_leaves_the_original(resnet, images):
    explainer = LRPLayerwise(resnet)
    before = explainer.attribute(*images)
    changed = explainer.set_kwargs(lower_rule="zplus")
    assert changed.lower_rule == "zplus" and explainer.lower_rule == "gamma"
    assert not torch.allclose(changed.attribute(*images), before, rtol=1e-3, atol=1e-6)
    gamma = explainer.set_kwargs(lower_gamma=1.0).attribute(*images)
    assert not torch.allclose(gamma, before, rtol=1e-3, atol=1e-6)  # the parameter reaches the rule
    assert torch.equal(explainer.attribute(*images), before)
    assert torch.equal(explainer.copy().attribute(*images), before)


# -- the four variants, reproduced ---------------------------------------------------------------------------
@pytest.mark.parametrize("model_name", ["resnet", "vgg"])
@pytest.mark.parametrize(
    "variant", ["LRPUniformEpsilon", "LRPEpsilonGammaBox", "LRPEpsilonPlus", "LRPEpsilonAlpha2Beta1"]
)
def test_variant_configurations_reproduce_the_variants(variant, model_name, request, images):
    model = request.getfixturevalue(model_name)
    config = LRPLayerwise.variant_configurations()[variant]
    expected = getattr(explainers, variant)(model).attribute(*images)
    layerwise = LRPLayerwise(model, **config).attribute(*images)
    assert torch.allclose(layerwise, expected, rtol=1e-6, atol=1e-6 * expected.abs().max().item())
    # not vacuous: the variants differ from one another on this model
    others = [name for name in LRPLayerwise.variant_configurations() if name != variant]
    other = LRPLayerwise(model, **LRPLayerwise.variant_configurations()[others[0]]).attribute(*images)
    assert not torch.allclose(other, expected, rtol=1e-3, atol=1e-6)


def test_default_configuration_is_epsilon_gamma_box(vgg, images):
    assert torch.equal(LRPLayerwise(vgg).attribute(*images), explainers.LRPEpsilonGammaBox(vgg).attribute(*images))


def test_variant_configurations_hold_only_the_chosen_rules_parameters(resnet):
    from tuner.search._space import SearchSpace  # how the tuner enqueues them

    configurations = LRPLayerwise.variant_configurations()
    assert set(configurations) == {"LRPUniformEpsilon", "LRPEpsilonGammaBox", "LRPEpsilonPlus", "LRPEpsilonAlpha2Beta1"}
    space = SearchSpace([LRPLayerwise(resnet)])
    for config in configurations.values():
        assert all(f"{group}_rule" in config for group in GROUPS)
        for group in GROUPS:
            rule = config[f"{group}_rule"]
            assert {key for key in config if key.startswith(group + "_")} == {f"{group}_rule"} | (
                {f"{group}_{rule}"} if rule in ("epsilon", "gamma") else set()
            )
        assert space.to_params(LRPLayerwise(resnet, **config)) == config


# -- LRP properties ----------------------------------------------------------------------------------------
def test_model_is_untouched(resnet, images):
    state = {key: value.clone() for key, value in resnet.state_dict().items()}
    with torch.no_grad():
        outputs = resnet(images[0])
    explainer = LRPLayerwise(
        resnet,
        input_rule="flat",
        lower_rule="alpha2beta1",
        middle_rule="epsilon",
        upper_rule="zplus",
        dense_rule="gamma",
    )
    explainer.attribute(*images)
    assert hook_count(resnet) == 0
    assert state.keys() == resnet.state_dict().keys()
    assert all(torch.equal(state[key], value) for key, value in resnet.state_dict().items())
    with torch.no_grad():
        assert torch.equal(resnet(images[0]), outputs)


def test_conservation_with_zero_biases_and_epsilon_rules(resnet, images):
    model = zero_biases(copy.deepcopy(resnet))
    rules = {f"{group}_rule": "epsilon" for group in GROUPS}
    relevance = LRPLayerwise(model, **rules, seed="one_hot").attribute(*images)
    assert torch.allclose(relevance.sum((1, 2, 3)), torch.ones(3), atol=1e-3)
    # the check catches a group's epsilon that absorbs relevance
    absorbed = LRPLayerwise(model, **rules, middle_epsilon=1.0, seed="one_hot").attribute(*images)
    assert (absorbed.sum((1, 2, 3)) - 1).abs().max() > 1e-2


def test_describe_names_every_groups_rule(resnet):
    explainer = LRPLayerwise(
        resnet,
        input_rule="flat",
        lower_rule="epsilon",
        lower_epsilon=0.01,
        middle_rule="alpha2beta1",
        upper_rule="zplus",
        dense_rule="gamma",
        dense_gamma=0.5,
    )
    assert explainer.describe().splitlines() == [
        "input (conv1): flat",
        "lower convolutions (7 layers): epsilon, epsilon=0.01",
        "middle convolutions (6 layers): alpha2-beta1",
        "upper convolutions (6 layers): z-plus",
        "dense head (1 layer): gamma, gamma=0.5",
    ]
    assert LRPLayerwise(resnet).describe().splitlines()[0] == "input (conv1): z-box"


def test_model_without_convolutions(mlp):
    explainer = LRPLayerwise(mlp, input_rule="epsilon", input_epsilon=1e-6)
    assert explainer.groups() == {"input": ["0"], "lower": [], "middle": [], "upper": [], "dense": ["2", "4"]}
    assert set(explainer.get_tunables()) == {
        f"{group}_{name}" for group in ("input", "dense") for name in ("rule", "epsilon", "gamma")
    }
    assert explainer.describe().splitlines() == [
        "input (0): epsilon, epsilon=1e-06",
        "dense head (2 layers): epsilon, epsilon=1e-06",
    ]
    inputs, targets = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    model = zero_biases(copy.deepcopy(mlp))
    relevance = LRPLayerwise(model, input_rule="epsilon", seed="one_hot").attribute(inputs, targets)
    assert relevance.shape == inputs.shape
    assert torch.allclose(relevance.sum(1), torch.ones(4), atol=1e-3)
    # the default (z-box input) works too, and uniform epsilon is reproduced on dense-only models
    assert torch.isfinite(LRPLayerwise(mlp).attribute(inputs, targets)).all()
    config = LRPLayerwise.variant_configurations()["LRPUniformEpsilon"]
    assert torch.allclose(
        LRPLayerwise(mlp, **config).attribute(inputs, targets),
        explainers.LRPUniformEpsilon(mlp).attribute(inputs, targets),
        rtol=1e-6,
        atol=1e-9,
    )


# -- the tuner searches the conditional space ----------------------------------------------------------------
def test_tune_respects_the_conditions(vgg, images):

    torch.manual_seed(4)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 3, 5, 9])
    result = run_tune(LRPLayerwise, vgg, (x, y), n_trials=4, n_samples=4, show_progress_bar=False)
    trials = result.study.get_trials(deepcopy=False)
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    assert any(t.params["input_rule"] != "zbox" for t in trials)  # the rules are searched, not only parameters
    assert trials[0].params == {
        "input_rule": "zbox",
        "lower_rule": "gamma",
        "lower_gamma": 0.25,
        "middle_rule": "gamma",
        "middle_gamma": 0.25,
        "upper_rule": "gamma",
        "upper_gamma": 0.25,
        "dense_rule": "epsilon",
        "dense_epsilon": 1e-6,
    }
    for trial in trials:
        for group in GROUPS:
            rule = trial.params[f"{group}_rule"]
            for parameter in ("epsilon", "gamma"):
                assert (f"{group}_{parameter}" in trial.params) == (rule == parameter)
    assert isinstance(result.best_explainer, LRPLayerwise)
    assert result.best_explainer.describe().startswith("input (features.0): ")


def test_conservation_on_a_transformer_with_epsilon_everywhere():
    """The dense layers the attention canonizer creates take a rule too (else plain gradient leaks)."""
    from test_sequence_relevance import TokenClassifier, TransformerBody

    torch.manual_seed(0)
    model = zero_biases(TokenClassifier(TransformerBody(1, "mean"))).eval()
    ids = torch.randint(2, 12, (3, 10))
    tiny = {f"{group}_epsilon": 1e-9 for group in GROUPS}
    explainer = LRPLayerwise(
        model, layer=model.embedding, **{f"{group}_rule": "epsilon" for group in GROUPS}, **tiny, seed="one_hot"
    )
    totals = explainer.attribute(ids, torch.tensor([0, 1, 0])).sum((1, 2))
    assert torch.allclose(totals, torch.ones(3), atol=1e-3), totals


def test_a_group_is_one_value_and_its_tunable_names_set_its_fields(resnet):
    """The grouped constructor and the tunables' flat names describe the same explainer, and a saved
    configuration (groups as JSON objects) loads back to it."""
    from explainers import GroupRule, explainer_config

    grouped = LRPLayerwise(resnet, lower=GroupRule("epsilon", epsilon=0.01), dense=GroupRule("gamma", gamma=0.5))
    flat = LRPLayerwise(resnet, lower_rule="epsilon", lower_epsilon=0.01, dense_rule="gamma", dense_gamma=0.5)
    assert grouped.rules == flat.rules and grouped.tunable_values() == flat.tunable_values()
    assert flat.lower == GroupRule("epsilon", epsilon=0.01) and flat.lower_epsilon == 0.01
    params = explainer_config(flat)["params"]
    assert params["lower"] == {"rule": "epsilon", "epsilon": 0.01, "gamma": 0.25}
    assert LRPLayerwise(resnet, **params).rules == flat.rules
