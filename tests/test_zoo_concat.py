"""Concatenating and pooling torchvision families (DenseNet, GoogLeNet, Inception v3) and the families that needed
only conserving rules (ShuffleNet v2, SqueezeNet, VGG, AlexNet, ResNet/ResNeXt): conservation with biases zeroed,
the model left bit-identical, canonized forwards exact, and checks that would catch each bug."""

from __future__ import annotations

import functools

import pytest
import torch
import torchvision.models as tm
from torch import nn
from torchvision.models.densenet import DenseNet
from torchvision.models.googlenet import InceptionAux as GoogLeNetInceptionAux
from torchvision.models.inception import InceptionA, InceptionAux
from torchvision.models.resnet import Bottleneck, ResNet
from zennit.composites import EpsilonAlpha2Beta1, EpsilonPlus
from zennit.torchvision import ResNetCanonizer, VGGCanonizer

import explainers._base
import explainers.canonizers._registry as canonizers_module
from explainers import LRPEpsilonAlpha2Beta1, LRPEpsilonPlus, LRPLayerwise, LRPUniformEpsilon
from explainers._conservation import conservation_model, relevance_sums
from explainers._guard import check_supported
from explainers.canonizers import default_canonizers
from explainers.canonizers._concat import DenseNetCanonizer, InceptionPoolingCanonizer, TransformInputCanonizer
from tests.helpers import assert_conserves, assert_same_state, model_state, zoo_variants

TINY = {"epsilon": 1e-12, "stabilizer": 1e-12}


def small_classifier(model: nn.Module, features: int) -> nn.Module:
    """VGG's and AlexNet's 4096-wide dense head (100M parameters) made 16 wide, same structure."""
    model.classifier = nn.Sequential(
        nn.Dropout(), nn.Linear(features, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 10)
    )
    return model


def densenet(memory_efficient: bool = False) -> DenseNet:
    return DenseNet(
        growth_rate=4,
        block_config=(2, 2),
        num_init_features=8,
        bn_size=2,
        num_classes=10,
        memory_efficient=memory_efficient,
    )


FAMILIES = {
    "densenet": (densenet, 32),
    "googlenet": (lambda: tm.googlenet(num_classes=10, init_weights=True, aux_logits=False, transform_input=True), 64),
    "inception_v3": (
        lambda: tm.inception_v3(num_classes=10, init_weights=False, aux_logits=False, transform_input=True),
        80,
    ),
    "shufflenet_v2": (lambda: tm.shufflenet_v2_x0_5(num_classes=10), 32),
    "squeezenet": (lambda: tm.squeezenet1_1(num_classes=10), 48),
    "vgg": (lambda: small_classifier(tm.vgg11_bn(num_classes=10), 512 * 7 * 7), 32),
    "alexnet": (lambda: small_classifier(tm.alexnet(num_classes=10), 256 * 6 * 6), 64),
    "resnet": (lambda: tm.resnet18(num_classes=10), 32),
    "resnext": (lambda: ResNet(Bottleneck, [1, 1, 1, 1], groups=4, width_per_group=4, num_classes=10), 32),
}


@functools.cache
def prepared(family: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The family's small model with biases and BatchNorm shifts zeroed (statistics calibrated), float64, a batch
    of inputs and the predicted classes."""
    build, size = FAMILIES[family]
    torch.manual_seed(0)
    inputs = torch.randn(3, 3, size, size, dtype=torch.float64)
    model = conservation_model(build(), inputs)
    with torch.no_grad():
        targets = model(inputs).argmax(1)
    return model, inputs, targets


def max_error(explainer, inputs, targets) -> float:
    return float((relevance_sums(explainer.attribute(inputs, targets)) - 1).abs().max())


@pytest.mark.parametrize("variant", list(zoo_variants()))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_conserves_and_leaves_the_model_as_it_was(family, variant):
    model, inputs, targets = prepared(family)
    before = model_state(model)
    assert_conserves(zoo_variants()[variant](model), inputs, targets)
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize("variant", ["LRPEpsilonPlus", "LRPEpsilonAlpha2Beta1"])
def test_layerwise_zplus_and_alpha2beta1_conserve_on_shufflenet(variant):
    model, inputs, targets = prepared("shufflenet_v2")
    config = LRPLayerwise.variant_configurations()[variant]
    assert_conserves(LRPLayerwise(model, **{**config, "dense_epsilon": 1e-12}, stabilizer=1e-12), inputs, targets)


@pytest.mark.parametrize(
    "variant, zennit_composite", [(LRPEpsilonPlus, EpsilonPlus), (LRPEpsilonAlpha2Beta1, EpsilonAlpha2Beta1)]
)
def test_zennit_rules_would_leak_on_shufflenet(variant, zennit_composite, monkeypatch):
    """ShuffleNet's depthwise 3x3 convolutions have neurons with only negative contributions: zennit's z-plus drops
    their relevance and alpha2-beta1 inverts it (or doubles it where only positive ones); ours conserve."""
    model, inputs, targets = prepared("shufflenet_v2")
    assert max_error(variant(model, **TINY), inputs, targets) < 1e-6
    monkeypatch.setattr(variant, "COMPOSITE", zennit_composite)
    assert max_error(variant(model, **TINY), inputs, targets) > 0.05


def without(canonizer: type, monkeypatch) -> None:
    """Unregister ``canonizer`` for this test (the guard then no longer counts its types as covered)."""
    kept = canonizers_module.CANONIZERS.filtered(lambda name, entry: entry.factory is not canonizer)
    monkeypatch.setattr(canonizers_module, "CANONIZERS", kept)


def unguarded(explainer):
    explainer.allow_unsupported = True
    return explainer


def test_densenet_pooling_gets_the_proportional_rule(monkeypatch):
    """The relevance of the final features (before relu and pooling) is proportional to their positive part per
    channel (the AvgPool rule); the functional pooling's gradient would spread it uniformly, and the relu's gradient
    would then drop the share of the inactive positions (18% here)."""
    model, inputs, targets = prepared("densenet")
    with torch.no_grad():
        features = model.features(inputs).clamp(min=0)

    def proportional(relevance: torch.Tensor) -> bool:
        expected = features / features.sum((2, 3), keepdim=True).clamp(min=1e-300) * relevance.sum((2, 3), keepdim=True)
        return torch.allclose(relevance, expected, rtol=1e-9, atol=1e-15)

    assert proportional(LRPUniformEpsilon(model, layer="features", **TINY).attribute(inputs, targets))
    without(DenseNetCanonizer, monkeypatch)
    assert not proportional(unguarded(LRPUniformEpsilon(model, layer="features", **TINY)).attribute(inputs, targets))
    assert max_error(unguarded(LRPUniformEpsilon(model, **TINY)), inputs, targets) > 0.05


def test_inception_pooling_would_leak_at_the_borders(monkeypatch):
    model, inputs, targets = prepared("inception_v3")
    assert max_error(LRPUniformEpsilon(model, **TINY), inputs, targets) < 1e-6
    without(InceptionPoolingCanonizer, monkeypatch)
    assert max_error(unguarded(LRPUniformEpsilon(model, **TINY)), inputs, targets) > 1e-3


@pytest.mark.parametrize("family", ["googlenet", "inception_v3"])
def test_transform_input_passes_relevance_unscaled(family, monkeypatch):
    model, inputs, targets = prepared(family)
    assert max_error(LRPUniformEpsilon(model, **TINY), inputs, targets) < 1e-6
    without(TransformInputCanonizer, monkeypatch)
    assert max_error(unguarded(LRPUniformEpsilon(model, **TINY)), inputs, targets) > 0.3  # scaled by about 0.45


def test_densenet_batch_norms_merge_only_into_the_convolution_they_follow():
    """conv0 -> norm0 and each dense layer's conv1 -> norm2 are merged; the pre-activation BatchNorms after a
    concatenation (norm1, the transitions' norm, norm5) are left as they are (identity rule)."""
    model = prepared("densenet")[0]
    handles = [handle for canonizer in default_canonizers(model) for handle in canonizer.apply(model)]
    try:
        merged = {
            name
            for name, module in model.named_modules()
            if isinstance(module, nn.BatchNorm2d)
            and bool((module.weight == 1).all() and (module.running_var == 1).all())
        }
    finally:
        for handle in handles:
            handle.remove()
    expected = {"features.norm0"} | {
        f"features.denseblock{block}.denselayer{layer}.norm2" for block in (1, 2) for layer in (1, 2)
    }
    assert merged == expected


def test_memory_efficient_densenet_equals_the_plain_one():
    """``memory_efficient=True`` checkpoints the bottleneck, which would re-run hooked modules in the backward pass;
    the canonizer's explicit forward makes its relevance that of the plain DenseNet."""
    model, inputs, targets = prepared("densenet")
    efficient = densenet(memory_efficient=True).double().eval()
    efficient.load_state_dict(model.state_dict())
    before = model_state(efficient)
    for make in zoo_variants().values():
        relevance = assert_conserves(make(efficient), inputs, targets)
        torch.testing.assert_close(relevance, make(model).attribute(inputs, targets), rtol=1e-10, atol=1e-14)
    assert_same_state(before, model_state(efficient))


def batch_norms_randomised(model: nn.Module) -> nn.Module:
    """Statistics and affine parameters away from identity (and shifts non-zero), so merges matter."""
    torch.manual_seed(4)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(-1.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    return model.double().eval()


def canonized_output(model: nn.Module, inputs: torch.Tensor, canonizers) -> torch.Tensor:
    handles = [handle for canonizer in canonizers for handle in canonizer.apply(model)]
    try:
        with torch.no_grad():
            return model(inputs)
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("family", ["densenet", "googlenet", "inception_v3"])
def test_canonized_forward_equals_the_original(family):
    """The canonizers of this family (BatchNorm merges with eps restored, explicit forwards, pooling modules) leave
    the output as it was. (DenseNet's conv0 -> norm0 goes through the shared AdjacentMergeBatchNorm, which leaves
    zennit's 1 / sqrt(1 + eps) in the merged BatchNorm, so it is left out here.)"""
    build, size = FAMILIES[family]
    torch.manual_seed(0)
    model = batch_norms_randomised(build())
    inputs = torch.randn(2, 3, size, size, dtype=torch.float64)
    before = model_state(model)
    with torch.no_grad():
        expected = model(inputs)
    ours = [
        canonizer
        for canonizer in default_canonizers(model)
        if type(canonizer).__module__ == "explainers.canonizers._concat"
    ]
    assert ours, "no canonizer of explainers.canonizers._concat applies"
    torch.testing.assert_close(canonized_output(model, inputs, ours), expected, rtol=0, atol=1e-12)
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize(
    "block, size",
    [
        (lambda: InceptionAux(8, num_classes=10), 17),
        (lambda: GoogLeNetInceptionAux(8, num_classes=10), 14),
        (lambda: InceptionA(8, pool_features=4), 9),
    ],
    ids=["inception_aux", "googlenet_aux", "inception_a"],
)
def test_inception_blocks_alone(block, size):
    """The blocks a user may reuse on their own: covered by the guard, forward unchanged, relevance conserved (an
    InceptionA's output relevance is its concatenated channels' sum, seeded here through a linear head)."""
    torch.manual_seed(0)
    module = block()
    check_supported(module)
    model = nn.Sequential(module, nn.Flatten(), nn.LazyLinear(10)) if isinstance(module, InceptionA) else module
    inputs = torch.rand(3, 8, size, size, dtype=torch.float64)
    model = conservation_model(batch_norms_randomised(model.double()), inputs)
    with torch.no_grad():
        expected = model(inputs)
    torch.testing.assert_close(canonized_output(model, inputs, default_canonizers(model)), expected, rtol=0, atol=1e-12)
    before = model_state(model)
    for make in zoo_variants().values():
        assert_conserves(make(model), inputs, expected.argmax(1))
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize(
    "builder, size", [(tm.googlenet, 64), (tm.inception_v3, 80)], ids=["googlenet", "inception_v3"]
)
def test_aux_logits_change_nothing_in_eval_mode(builder, size):
    """The auxiliary heads run in training mode only; present in eval mode they change nothing (Inception v3's
    needs 299 px inputs, so the BatchNorm calibration runs without it and it is attached afterwards)."""
    torch.manual_seed(0)
    inputs = torch.randn(3, 3, size, size, dtype=torch.float64)
    with_aux = builder(num_classes=10, aux_logits=True, init_weights=True, transform_input=True)
    aux = getattr(with_aux, "AuxLogits", None)
    if aux is not None:
        with_aux.AuxLogits = None
    model = conservation_model(with_aux, inputs)
    if aux is not None:
        model.AuxLogits = aux.double().eval()
    before = model_state(model)
    with torch.no_grad():
        targets = model(inputs).argmax(1)
    for make in zoo_variants().values():
        assert_conserves(make(model), inputs, targets)
    assert_same_state(before, model_state(model))


def test_concatenating_models_are_covered():
    for family in ("densenet", "googlenet", "inception_v3"):
        check_supported(prepared(family)[0])


@pytest.mark.parametrize("family", ["resnet", "resnext", "vgg"])
def test_resnet_and_vgg_canonizers_equal_zennits(family, monkeypatch):
    """ResNet blocks split their add through :class:`ResNetBlockCanonizer` and VGGs merge BatchNorm sequentially:
    every variant's relevance (biases and BatchNorm shifts kept) is that of zennit's ResNet and VGG canonizers."""
    build, size = FAMILIES[family]
    torch.manual_seed(0)
    model = batch_norms_randomised(build())
    inputs = torch.randn(2, 3, size, size, dtype=torch.float64)
    targets = torch.tensor([1, 7])
    ours = {name: make(model).attribute(inputs, targets) for name, make in zoo_variants().items()}
    zennits = ResNetCanonizer if family != "vgg" else VGGCanonizer
    monkeypatch.setattr(explainers._base, "default_canonizers", lambda model: [zennits()])
    for name, make in zoo_variants().items():
        reference = make(model).attribute(inputs, targets)
        assert reference.abs().amax() > 0
        torch.testing.assert_close(ours[name], reference, rtol=1e-9, atol=1e-12 * float(reference.abs().amax()))
