"""LRP conserves on torchvision's CNN families with residual adds, squeeze-and-excitation gates and layer scale
(MobileNet v2/v3, MNASNet, EfficientNet v1/v2, RegNet X/Y, ConvNeXt), and the canonizers change nothing a user can
see: same outputs, the model bit-identical afterwards."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torchvision.models as tm
from helpers import (
    assert_conserves,
    assert_same_state,
    model_state,
    randomise_batch_norm,
    zoo_variants,
)
from torch import nn
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.models.efficientnet import (
    EfficientNet,
    FusedMBConvConfig,
    MBConvConfig,
)
from torchvision.models.regnet import BlockParams, RegNet
from torchvision.ops import SqueezeExcitation

import explainers.canonizers._registry as canonizers_module
from explainers import (
    LRPEpsilonAlpha2Beta1,
    LRPLayerwise,
    LRPUniformEpsilon,
    UnsupportedModelError,
    check_supported,
)
from explainers._conservation import conservation_model, relevance_sums
from explainers.canonizers._cnn import BlockCanonizer

SIZE = 32


def _convnext() -> nn.Module:
    """A two-stage ConvNeXt whose layer scales are random in (-1, 1), far from the tiny initial 1e-6 (at which
    a layer scale that multiplies the relevance would go unnoticed)."""
    model = ConvNeXt([CNBlockConfig(8, 16, 2), CNBlockConfig(16, None, 2)], num_classes=10)
    generator = torch.Generator().manual_seed(0)
    for name, parameter in model.named_parameters():
        if name.endswith("layer_scale"):
            parameter.data = torch.rand(parameter.shape, generator=generator) * 2 - 1
    return model


def _regnet(**kwargs) -> nn.Module:
    """Widths [8, 16], depths [2, 1]: blocks with a projection shortcut and one with the identity shortcut."""
    return RegNet(
        BlockParams.from_init_params(depth=3, w_0=8, w_a=2.0, w_m=2.0, group_width=4, **kwargs), num_classes=10
    )


#: family -> a small model with every block type of the family (residual and non-residual blocks)
FAMILIES = {
    "mobilenet_v2": lambda: tm.mobilenet_v2(num_classes=10, width_mult=0.25),
    "mobilenet_v3_small": lambda: tm.mobilenet_v3_small(num_classes=10, width_mult=0.25),
    "mnasnet": lambda: tm.MNASNet(0.25, num_classes=10),
    "efficientnet": lambda: EfficientNet(
        [MBConvConfig(1, 3, 1, 8, 8, 1), MBConvConfig(6, 3, 2, 8, 16, 2), MBConvConfig(6, 5, 2, 16, 24, 2)],
        dropout=0.2,
        last_channel=64,
        num_classes=10,
    ),
    "efficientnet_v2": lambda: EfficientNet(
        [
            FusedMBConvConfig(1, 3, 1, 8, 8, 2),
            FusedMBConvConfig(4, 3, 2, 8, 16, 2),
            MBConvConfig(4, 3, 2, 16, 16, 2),
            MBConvConfig(6, 3, 1, 16, 24, 2),
        ],
        dropout=0.2,
        last_channel=64,
        num_classes=10,
    ),
    "regnet_x": _regnet,
    "regnet_y": lambda: _regnet(se_ratio=0.25),
    "convnext": _convnext,
}


def inputs() -> torch.Tensor:
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@functools.cache
def prepared(family: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The family's model in float64, BatchNorm calibrated, biases zeroed; inputs and their predicted classes.
    Shared by the tests of a family: every test also checks that the model is left bit-identical."""
    torch.manual_seed(0)
    x = inputs()
    model = conservation_model(FAMILIES[family](), x)
    with torch.no_grad():
        targets = model(x).argmax(1)
    return model, x, targets


def max_error(explainer, x: torch.Tensor, targets: torch.Tensor) -> float:
    return float((relevance_sums(explainer.attribute(x, targets)) - 1).abs().max())


#: alpha2-beta1 splits a neuron's relevance into parts up to 1e6 times larger that cancel, and its stabilizer (1e-12)
#: absorbs a share of them at neurons with a tiny positive or negative part: up to 3e-5 here, scaling linearly with
#: the stabilizer (see test_alpha_beta_deficit_is_the_stabilizer)
TOLERANCE = {"LRPEpsilonAlpha2Beta1": 1e-4}


@pytest.mark.parametrize("variant", list(zoo_variants()))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_conserves_and_leaves_model_unchanged(family: str, variant: str) -> None:
    model, x, targets = prepared(family)
    before = model_state(model)
    assert_conserves(zoo_variants()[variant](model), x, targets, tolerance=TOLERANCE.get(variant, 1e-6))
    assert_same_state(before, model_state(model))


def test_alpha_beta_deficit_is_the_stabilizer() -> None:
    """With a negligible stabilizer alpha2-beta1 conserves as tightly as the other variants: what it misses with
    the stabilizer of 1e-12 is absorbed by the stabilizer, not lost in a block."""
    model, x, targets = prepared("mobilenet_v3_small")
    assert_conserves(LRPEpsilonAlpha2Beta1(model, epsilon=1e-12, stabilizer=1e-20), x, targets, tolerance=1e-9)


@pytest.mark.parametrize("family", ["mobilenet_v3_small", "convnext"])
def test_layerwise_default_conserves(family: str) -> None:
    """LRPLayerwise's default rules (z-box input, gamma=0.25 on the other convolutions, epsilon on dense layers)
    conserve; with the default epsilon and stabilizer of 1e-6 they absorb a little relevance by design (up to
    3e-4 on ConvNeXt, whose small initial weights give small activations), hence the looser tolerance there."""
    model, x, targets = prepared(family)
    before = model_state(model)
    assert_conserves(LRPLayerwise(model, dense_epsilon=1e-12, stabilizer=1e-12), x, targets)
    assert_conserves(LRPLayerwise(model), x, targets, tolerance=1e-3)
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_canonized_forward_equals_original(family: str) -> None:
    """With biases, BatchNorm statistics and shifts, and dropout (eval mode), the canonized blocks compute the
    original output to float64 precision, and removing the canonizers restores the model."""
    torch.manual_seed(1)
    model = randomise_batch_norm(FAMILIES[family]()).double().eval()
    x = inputs()
    before = model_state(model)
    with torch.no_grad():
        expected = model(x)
        handles = [instance for canonizer in own_canonizers() for instance in canonizer.apply(model)]
        assert handles, "no block was canonized"
        canonized = model(x)
        for instance in handles:
            instance.remove()
    assert torch.allclose(canonized, expected, atol=1e-12, rtol=0)
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize("family", ["efficientnet", "convnext"])
def test_stochastic_depth_kept_in_training_mode(family: str) -> None:
    """In training mode stochastic depth still drops rows: the same random draws give the same output."""
    model = FAMILIES[family]().double()
    for module in model.modules():
        if hasattr(module, "stochastic_depth"):
            module.stochastic_depth.p = 0.5
    original = copy.deepcopy(model).train()
    canonized = copy.deepcopy(model).train()
    for canonizer in own_canonizers():
        canonizer.apply(canonized)
    x = inputs()
    torch.manual_seed(2)
    expected = original(x)
    torch.manual_seed(2)
    assert torch.allclose(canonized(x), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_guard_accepts_covered_family(family: str) -> None:
    check_supported(FAMILIES[family]())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_checks_catch_missing_canonizers(family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without this module's canonizers the guard refuses the family by name and, forced through, relevance
    is far from conserved: the conservation and guard tests above would catch a lost canonizer."""
    model, x, targets = prepared(family)
    kept = canonizers_module.CANONIZERS.filtered(lambda name, entry: not _is_own(entry.factory))
    monkeypatch.setattr(canonizers_module, "CANONIZERS", kept)
    with pytest.raises(UnsupportedModelError, match=r"\(torchvision\."):
        check_supported(model)
    explainer = LRPUniformEpsilon(model, epsilon=1e-12, stabilizer=1e-12)
    explainer.allow_unsupported = True
    assert not max_error(explainer, x, targets) < 0.1


def test_squeeze_excitation_passes_relevance_to_the_signal_only() -> None:
    """SE as the first layer, then a dense head: with the gate held constant the input relevance is exactly the
    epsilon-rule relevance of the gated signal, ``(s * x)_i w_ti / logit_t``; none goes through the gate."""
    torch.manual_seed(0)
    model = nn.Sequential(SqueezeExcitation(3, 2), nn.Flatten(), nn.Linear(3 * 4 * 4, 10, bias=False)).double()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    targets = torch.tensor([1, 7])
    with torch.no_grad():
        gated = model[0](x).flatten(1)
        logits = model(x)
    rows = torch.arange(2)
    expected = gated * model[2].weight[targets] / logits[rows, targets, None]
    relevance = LRPUniformEpsilon(model, epsilon=1e-12, stabilizer=1e-12).attribute(x, targets)
    assert torch.allclose(relevance.flatten(1), expected, atol=1e-9, rtol=0)


def own_canonizers() -> list[BlockCanonizer]:
    return [factory() for _, factory in canonizers_module.CANONIZERS.values() if _is_own(factory)]


def _is_own(factory) -> bool:
    return isinstance(factory, type) and issubclass(factory, BlockCanonizer)
