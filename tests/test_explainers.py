"""Properties of the LRP explainers: the API, value semantics, LRP identities, and input checks."""

import copy
import inspect

import pytest
import torch
import torchvision
from helpers import hook_count, randomise_batch_norm, zero_biases
from torch import nn
from zennit.composites import LayerMapComposite, layer_map_base
from zennit.core import Composite
from zennit.rules import Epsilon
from zennit.types import Convolution

from explainers import (
    COMMON_OPTIONS,
    LRPBase,
    LRPEpsilonAlpha2Beta1,
    LRPEpsilonGammaBox,
    LRPEpsilonPlus,
    LRPUniformEpsilon,
    ModelInputError,
    NonFiniteAttributionError,
)

VARIANTS = [LRPUniformEpsilon, LRPEpsilonGammaBox, LRPEpsilonPlus, LRPEpsilonAlpha2Beta1]
UNIT = {"low": 1e-6, "high": 1, "log": True}
COMMON = {
    "zennit_canonizers": None,
    "forward_arg_extractor": None,
    "additional_forward_arg_extractor": None,
    "layer": None,
    "n_classes": None,
    "allow_unsupported": False,
    "seed": "sign",
}


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(1)
    model = torchvision.models.VGG(torchvision.models.vgg.make_layers([16, "M", 32, "M", 64], batch_norm=True))
    model.avgpool = nn.AdaptiveAvgPool2d((2, 2))
    model.classifier = nn.Sequential(nn.Linear(64 * 4, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 10))
    return randomise_batch_norm(model).eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(2)
    return torch.randn(3, 3, 32, 32), torch.tensor([1, 4, 7])


def _state(model):
    return {key: value.clone() for key, value in model.state_dict().items()}


# -- the API table ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls, own, supported, tunables",
    [
        (
            LRPUniformEpsilon,
            {"epsilon": 0.25, "stabilizer": 1e-6},
            {"Linear", "Convolution", "LSTM", "RNN", "Attention"},
            {"epsilon"},
        ),
        (
            LRPEpsilonGammaBox,
            {"low": -3.0, "high": 3.0, "epsilon": 1e-6, "gamma": 0.25, "stabilizer": 1e-6},
            {"Convolution"},
            {"epsilon", "gamma"},
        ),
        (LRPEpsilonPlus, {"epsilon": 1e-6, "stabilizer": 1e-6}, {"Convolution"}, {"epsilon"}),
        (LRPEpsilonAlpha2Beta1, {"epsilon": 1e-6, "stabilizer": 1e-6}, {"Convolution"}, {"epsilon"}),
    ],
)
def test_each_variant_declares_its_parameters_modules_and_tunables(cls, own, supported, tunables, resnet):
    """A variant's constructor takes its own parameters, then the shared ones by name (the reference's order)."""
    parameters = inspect.signature(cls.__init__).parameters
    assert list(parameters)[:2] == ["self", "model"]
    names = list(parameters)[2:]
    assert {name: parameters[name].default for name in names[: len(own)]} == own
    assert names[len(own) :] == list(COMMON)
    expected = {**own, **COMMON}
    assert cls.parameter_names() == ("model", *expected)
    assert {kind.__name__ for kind in cls.SUPPORTED_MODULES} == supported
    assert cls.EXPLANATION_TYPE == "attribution"

    explainer = cls(resnet)
    assert explainer.get_tunables() == {name: (float, UNIT) for name in tunables}
    assert explainer.model is resnet and not resnet.training
    assert explainer.device == torch.device("cpu")
    assert explainer.n_classes == 10
    assert isinstance(explainer.zennit_composite, Composite)
    for name, value in expected.items():
        assert getattr(explainer, name) == value if name != "n_classes" else True
    assert repr(explainer).startswith(f"{cls.__name__}(model=ResNet, ")
    assert all(f"{name}=" in repr(explainer) for name in own)


def test_base_takes_a_composite_and_the_shared_options_keyword_only(resnet, images):
    """LRPBase takes a model and a composite; the shared options are its keyword-only arguments."""
    parameters = inspect.signature(LRPBase.__init__).parameters
    assert list(parameters)[1:3] == ["model", "zennit_composite"]
    assert [name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY] == list(COMMON)
    assert COMMON_OPTIONS == tuple(COMMON)
    assert LRPBase.SUPPORTED_MODULES == [] and LRPBase.TUNABLES == {}
    composite = LayerMapComposite([(Convolution, Epsilon()), (nn.Linear, Epsilon())])
    explainer = LRPBase(resnet, composite)
    assert explainer.zennit_composite is composite and explainer.get_tunables() == {}
    assert explainer.attribute(*images).shape == images[0].shape
    assert explainer.copy().zennit_composite is composite


def test_n_classes_is_inferred_from_a_forward_pass(images):
    class HeadFirst(nn.Module):  # the last Linear registered is not the output layer
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 5)
            self.body = nn.Sequential(
                nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 8)
            )

        def forward(self, x):
            return self.head(self.body(x))

    explainer = LRPUniformEpsilon(HeadFirst())
    x, _ = images
    explainer.attribute(x, torch.tensor([4, 4, 4]))
    assert explainer.n_classes == 5
    with pytest.raises(ValueError, match="n_classes=3"):
        LRPUniformEpsilon(HeadFirst(), n_classes=3).attribute(x, torch.tensor([0, 0, 0]))


# -- explainers are values -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", VARIANTS)
def test_set_kwargs_rebuilds_the_rules(cls, resnet, images):
    original = cls(resnet)
    before = original.attribute(*images)
    for name in original.get_tunables():
        changed = original.set_kwargs(**{name: 0.9})
        assert changed is not original and getattr(changed, name) == 0.9
        fresh = cls(resnet, **{name: 0.9}).attribute(*images)
        assert torch.equal(changed.attribute(*images), fresh)
        if not (cls is not LRPUniformEpsilon and name == "epsilon"):  # epsilon there only touches the head
            assert not torch.allclose(fresh, before)
        # the original keeps its parameters and its attributions
        assert getattr(original, name) == getattr(cls(resnet), name)
        assert torch.equal(original.attribute(*images), before)
    copied = original.copy()
    assert copied is not original and repr(copied) == repr(original)
    assert torch.equal(copied.attribute(*images), before)


def test_epsilon_changes_a_uniform_epsilon_map_more_than_a_scale(resnet, images):
    small = LRPUniformEpsilon(resnet, epsilon=1e-6).attribute(*images).flatten(1)
    large = LRPUniformEpsilon(resnet, epsilon=1.0).attribute(*images).flatten(1)
    assert (nn.functional.cosine_similarity(small, large) < 0.99).all()


def test_set_kwargs_names_the_valid_parameters(resnet):
    with pytest.raises(TypeError, match="'gama'.*gamma"):
        LRPEpsilonGammaBox(resnet).set_kwargs(gama=0.1)


# -- LRP identities --------------------------------------------------------------------------------------
def test_lrp0_equals_gradient_times_input(resnet, images):
    x, y = images
    relevance = LRPUniformEpsilon(resnet, epsilon=1e-9, stabilizer=1e-12, seed="logit").attribute(x, y)
    x = x.clone().requires_grad_(True)
    logits = resnet(x).gather(1, y[:, None]).squeeze(1)
    (gradient,) = torch.autograd.grad(logits.sum(), x)
    # relevance starts at the logit: LRP-0 is gradient x input (tests/test_seed.py: the other seeds)
    expected = (gradient * x).detach()
    similarity = nn.functional.cosine_similarity(relevance.flatten(1), expected.flatten(1))
    assert (similarity > 0.999).all(), similarity


@pytest.mark.parametrize("name", ["resnet", "vgg"])
def test_relevance_is_conserved_without_biases(name, request, images):
    model = zero_biases(copy.deepcopy(request.getfixturevalue(name)))
    x, y = images
    totals = LRPUniformEpsilon(model, epsilon=1e-9, seed="one_hot").attribute(x, y).sum((1, 2, 3))
    assert torch.allclose(totals, torch.ones(3), atol=1e-3), totals


def test_conservation_check_catches_a_missing_canonizer(resnet, images):
    model = zero_biases(copy.deepcopy(resnet))
    no_canonizer = LayerMapComposite(layer_map_base() + [(Convolution, Epsilon(1e-9)), (nn.Linear, Epsilon(1e-9))])
    totals = LRPBase(model, no_canonizer, seed="one_hot").attribute(*images).sum((1, 2, 3))
    assert (totals - 1).abs().min() > 0.5, totals  # relevance doubles at the residual adds


@pytest.mark.parametrize("cls", VARIANTS)
def test_batch_independence(cls, resnet, images):
    x, y = images
    batch = cls(resnet).attribute(x, y)
    alone = cls(resnet).attribute(x[1:2], y[1:2])
    assert torch.allclose(alone[0], batch[1], rtol=1e-4, atol=1e-6 * batch[1].abs().max())


# -- the model is left as it was -------------------------------------------------------------------------
@pytest.mark.parametrize("cls", VARIANTS)
def test_model_untouched(cls, resnet, images):
    x, y = images
    state, outputs, hooks = _state(resnet), resnet(x).detach(), hook_count(resnet)
    cls(resnet).attribute(x, y)
    assert all(torch.equal(state[k], v) for k, v in resnet.state_dict().items())
    assert state.keys() == resnet.state_dict().keys()
    assert torch.equal(resnet(x), outputs) and hook_count(resnet) == hooks


def test_model_untouched_when_attribute_raises(resnet, images):
    x, y = images
    state, outputs = _state(resnet), resnet(x).detach()
    explainer = LRPEpsilonGammaBox(resnet)
    explainer.attribute(x, y)  # n_classes known: the next call goes straight into the composite

    def fail(module, args):
        raise RuntimeError("boom")

    handle = resnet.layer3.register_forward_pre_hook(fail)
    try:
        with pytest.raises(ModelInputError, match="boom"):
            explainer.attribute(x, y)
    finally:
        handle.remove()
    assert all(torch.equal(state[k], v) for k, v in resnet.state_dict().items())
    assert state.keys() == resnet.state_dict().keys()
    assert torch.equal(resnet(x), outputs) and hook_count(resnet) == 0
    assert "forward" not in resnet.layer1[0].__dict__  # the ResNet canonizer's forward is gone


# -- layers and several inputs ---------------------------------------------------------------------------
def test_layer_attribution_shapes(resnet, images):
    x, y = images
    by_name = LRPEpsilonPlus(resnet, layer="layer2").attribute(x, y)
    by_module = LRPEpsilonPlus(resnet, layer=resnet.layer2).attribute(x, y)
    assert by_name.shape == resnet.layer2(resnet.layer1(resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x)))))).shape
    assert torch.equal(by_name, by_module)
    several = LRPEpsilonPlus(resnet, layer=["layer1", resnet.layer3]).attribute(x, y)
    assert isinstance(several, tuple) and [r.shape[1] for r in several] == [64, 256]


def test_unknown_layer_name(resnet):
    with pytest.raises(ValueError, match="no module named 'layer9'"):
        LRPEpsilonPlus(resnet, layer="layer9")


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 + 2, 3)

    def forward(self, image, features, scale):
        pooled = self.conv(image).relu().mean((2, 3))
        return self.fc(torch.cat([pooled, features], 1)) * scale


def test_forward_argument_extractors():
    torch.manual_seed(3)
    batch = (torch.randn(2, 3, 8, 8), torch.randn(2, 2), torch.tensor(2.0))
    explainer = LRPUniformEpsilon(
        TwoInputs(),
        epsilon=1e-9,
        forward_arg_extractor=lambda b: (b[0], b[1]),
        additional_forward_arg_extractor=lambda b: (b[2],),
    )
    relevance = explainer.attribute(batch, torch.tensor([0, 2]))
    assert isinstance(relevance, tuple) and [r.shape for r in relevance] == [batch[0].shape, batch[1].shape]
    only_image = LRPUniformEpsilon(
        TwoInputs(), forward_arg_extractor=lambda b: b[0], additional_forward_arg_extractor=lambda b: (b[1], b[2])
    )
    assert only_image.attribute(batch, torch.tensor([0, 2])).shape == batch[0].shape


# -- bad input -------------------------------------------------------------------------------------------
def test_bad_targets(resnet, images):
    x, _ = images
    explainer = LRPEpsilonPlus(resnet)
    with pytest.raises(ValueError, match=r"expected shape \(3,\)"):
        explainer.attribute(x, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="out of range.*10 classes"):
        explainer.attribute(x, torch.tensor([1, 2, 10]))
    with pytest.raises(ValueError, match="out of range"):
        explainer.attribute(x, torch.tensor([-1, 2, 3]))
    with pytest.raises(ValueError, match="integer class indices"):
        explainer.attribute(x, torch.tensor([1.0, 2.0, 3.0]))
    assert explainer.attribute(x, 3).shape == x.shape  # one target for the whole batch


def test_inputs_the_model_rejects(resnet):
    with pytest.raises(ModelInputError, match=r"rejected inputs of shape \(1, 5\)"):
        LRPEpsilonPlus(resnet).attribute(torch.randn(3, 5), torch.tensor([1, 2, 3]))


def test_variant_without_its_modules():
    with pytest.raises(ValueError, match="needs a model with at least one of these modules: Convolution"):
        LRPEpsilonGammaBox(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    LRPUniformEpsilon(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))  # supported there


def test_bad_parameters(resnet):
    with pytest.raises(ValueError, match="epsilon must be a non-negative"):
        LRPEpsilonPlus(resnet, epsilon=-1.0)
    with pytest.raises(ValueError, match="low must be below high"):
        LRPEpsilonGammaBox(resnet, low=1.0, high=0.0)


def test_non_finite_attributions_are_reported(resnet, images):
    x, y = images
    x = x.clone()
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteAttributionError, match="NaN/Inf"):
        LRPEpsilonPlus(resnet).attribute(x, y)


def test_copies_of_a_checked_explainer_skip_the_probe_forward(resnet, images):
    x, y = images
    calls = []
    handle = resnet.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        base = LRPEpsilonPlus(resnet)
        base.check_inputs(x)
        assert calls == [1] and base.n_classes == 10
        base.set_kwargs(epsilon=0.5).attribute(x, y)
        assert calls == [1, 3]  # the batch only, no second one-sample probe
        LRPEpsilonPlus(resnet).attribute(x, y)
        assert calls == [1, 3, 1, 3]  # a new explainer checks once
    finally:
        handle.remove()
    with pytest.raises(ModelInputError):
        LRPEpsilonPlus(resnet).check_inputs(torch.randn(2, 5))


def test_the_registry_names_every_explainer_and_refuses_unknown_names():
    """Each explainer registers itself by a short name; a study with none searches the four variants."""
    import explainers

    assert explainers.EXPLAINERS == {
        "uniform_epsilon": LRPUniformEpsilon,
        "epsilon_gamma_box": LRPEpsilonGammaBox,
        "epsilon_plus": LRPEpsilonPlus,
        "epsilon_alpha2_beta1": LRPEpsilonAlpha2Beta1,
        "layerwise": explainers.LRPLayerwise,
    }
    assert explainers.DEFAULT_EXPLAINERS == VARIANTS
    assert explainers.get_explainer("epsilon_plus") is explainers.get_explainer("LRPEpsilonPlus") is LRPEpsilonPlus
    with pytest.raises(ValueError, match="valid names: uniform_epsilon, epsilon_gamma_box"):
        explainers.get_explainer("epsilon_minus")
    with pytest.raises(TypeError, match="tunables its constructor does not take: gama"):

        @explainers.register_explainer("misspelt")
        class Misspelt(LRPUniformEpsilon):
            TUNABLES = {"gama": (float, UNIT)}

    assert "misspelt" not in explainers.EXPLAINERS


def test_a_merged_batch_norm_is_skipped_with_its_eps_kept(monkeypatch):
    """The merge makes a BatchNorm the identity by skipping it, not by setting its eps to 0 (which torch up to
    2.11 refuses in eval mode): while merged the BatchNorm never runs, the canonized model computes the original's
    output, and afterwards the module is as it was."""
    from explainers.canonizers import AdjacentMergeBatchNorm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    model = model.double().eval()
    batch_norm = model[1]
    batch_norm.running_mean.uniform_(-1, 1)
    batch_norm.running_var.uniform_(0.5, 2)
    nn.init.uniform_(batch_norm.weight, 0.5, 2)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    handles = AdjacentMergeBatchNorm().apply(model)
    assert len(handles) == 1 and batch_norm.eps == 1e-5

    def refuse(*args, **kwargs):
        raise AssertionError("a merged BatchNorm ran")

    with monkeypatch.context() as patched:
        patched.setattr(torch.nn.functional, "batch_norm", refuse)
        with torch.no_grad():
            torch.testing.assert_close(model(x), expected, rtol=1e-12, atol=1e-12)
    for handle in handles:
        handle.remove()
    assert "forward" not in vars(batch_norm) and batch_norm.eps == 1e-5
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
