"""The conservation guard: a model part no rule or canonizer covers is refused by name, before any work."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_conserves, assert_same_state, model_state
from torch import nn

from explainers import (
    LRPEpsilonGammaBox,
    LRPEpsilonPlus,
    LRPUniformEpsilon,
    UnsupportedModelError,
    check_supported,
    conservation_model,
)


class Swish(nn.Module):
    """An element-wise non-linearity the rules do not know."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class Scale(nn.Module):
    """A module that uses a parameter of its own in a custom forward."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Block(nn.Module):
    """A user-defined block whose children are all covered and whose forward chains them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


def network(middle: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), middle, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)
    ).eval()


def counting_forwards(model: nn.Module) -> list[int]:
    calls: list[int] = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls


@pytest.mark.parametrize(
    ("middle", "named"),
    [(Swish(), "Swish) is a layer without a known LRP rule"), (Scale(4), "Scale) has parameters of its own (scale)")],
)
def test_an_uncovered_module_is_refused_by_path_and_type_before_any_forward_pass(middle, named):
    model = network(middle)
    calls = counting_forwards(model)
    before = model_state(model)
    with pytest.raises(UnsupportedModelError) as caught:
        LRPEpsilonPlus(model).attribute(torch.randn(2, 3, 8, 8), torch.tensor([0, 1]))
    assert f"2 ({type(middle).__module__}.{named}" in str(caught.value)
    assert "allow_unsupported=True" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert calls == [], "the guard must refuse before the model runs"
    assert_same_state(before, model_state(model))


def test_allow_unsupported_explains_anyway():
    model = network(Swish())
    relevance = LRPUniformEpsilon(model, allow_unsupported=True).attribute(torch.randn(2, 3, 8, 8), 0)
    assert relevance.shape == (2, 3, 8, 8) and torch.isfinite(relevance).all()


def test_allow_unsupported_survives_set_kwargs():
    explainer = LRPUniformEpsilon(network(Swish()), allow_unsupported=True).set_kwargs(epsilon=0.1)
    assert explainer.allow_unsupported is True
    explainer.attribute(torch.randn(1, 3, 8, 8), 0)


def test_a_user_block_whose_children_are_covered_is_explained_and_conserves():
    inputs = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    model = conservation_model(network(Block()), inputs)
    check_supported(model)
    for explainer in (
        LRPUniformEpsilon(model, epsilon=1e-12, stabilizer=1e-12),
        LRPEpsilonGammaBox(model, low=-4.0, high=4.0, epsilon=1e-12, stabilizer=1e-12),
    ):
        assert_conserves(explainer, inputs, torch.tensor([0, 1, 2, 3]))


def test_a_torchvision_block_without_its_canonizer_is_refused(monkeypatch):
    """The guard knows the torchvision blocks that compute outside their submodules: with their canonizers
    unregistered, a MobileNet is refused at its first inverted residual instead of being explained wrongly."""
    import torchvision

    from explainers.canonizers import _registry

    monkeypatch.setattr(_registry, "CANONIZERS", _registry.CANONIZERS.filtered(lambda name, entry: False))
    model = torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.25).eval()
    expected = r"features\.1 \(torchvision\.models\.mobilenetv2\.InvertedResidual\)"
    with pytest.raises(UnsupportedModelError, match=expected):
        check_supported(model)


def test_every_torchvision_classifier_passes_the_guard(monkeypatch):
    """Every architecture of torchvision's classification list is covered (built on the meta device: no memory;
    RegNet computes its block widths from tensors, so that small computation runs on the CPU)."""
    import warnings

    import torchvision
    from torchvision.models.regnet import BlockParams

    block_params = BlockParams.from_init_params.__func__

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return block_params(cls, *args, **kwargs)

    monkeypatch.setattr(BlockParams, "from_init_params", classmethod(on_cpu))
    names = torchvision.models.list_models(module=torchvision.models)
    assert len(names) > 70
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        for name in names:
            check_supported(torchvision.models.get_model(name, weights=None))
