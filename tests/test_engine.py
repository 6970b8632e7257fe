"""The attribution engine (each rule as its layer's backward) gives the relevance of zennit's hooks, the reference,
on one small model per torchvision family, with its default parameters and biases kept; every layer of a CNN is
covered; and the checks catch a deliberately wrong rule."""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest
import test_zoo_cnn
import test_zoo_concat
import test_zoo_transformers
import torch
from helpers import randomise_batch_norm
from torch import nn

from explainers import (
    LRPEpsilonAlpha2Beta1,
    LRPEpsilonGammaBox,
    LRPEpsilonPlus,
    LRPLayerwise,
    LRPUniformEpsilon,
)
from explainers._conservation import relevance_sums
from explainers.engine import EngineComposite, zennit_hooks
from explainers.engine._rules import EpsilonRule
from explainers.rules._direct import direct_input_gradient

#: family -> (a small model, its input size)
FAMILIES = {
    **{name: (factory, test_zoo_cnn.SIZE) for name, factory in test_zoo_cnn.FAMILIES.items()},
    **test_zoo_concat.FAMILIES,
    **{name: test_zoo_transformers.FAMILIES[name] for name in ("vit", "swin", "maxvit")},
}
VARIANTS = {
    "UniformEpsilon": LRPUniformEpsilon,
    "EpsilonPlus": LRPEpsilonPlus,
    "EpsilonGammaBox": LRPEpsilonGammaBox,
    "EpsilonAlpha2Beta1": LRPEpsilonAlpha2Beta1,
    "Layerwise": LRPLayerwise,
}
#: the issue's bound on max |engine - reference| / max |reference| per sample, in float64
TOLERANCE = 1e-5


@functools.cache
def model_and_inputs(family: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The family's model in float64 with its biases and BatchNorm statistics random (not the identity), a batch of
    3 and the predicted classes."""
    factory, size = FAMILIES[family]
    torch.manual_seed(0)
    model = randomise_batch_norm(factory()).double().eval()
    inputs = torch.randn(3, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        targets = model(inputs).argmax(1)
    return model, inputs, targets


def relative_error(relevance: torch.Tensor, reference: torch.Tensor) -> float:
    """max over samples of max |relevance - reference| / max |reference|."""
    difference = (relevance - reference).flatten(1).abs().amax(1)
    return float((difference / reference.flatten(1).abs().amax(1)).max())


def both_paths(explainer, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    relevance = explainer.attribute(inputs, targets)
    with zennit_hooks():
        reference = explainer.attribute(inputs, targets)
    return relevance, reference


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("family", FAMILIES)
def test_engine_equals_the_zennit_hooks(family: str, variant: str) -> None:
    model, inputs, targets = model_and_inputs(family)
    relevance, reference = both_paths(VARIANTS[variant](model), inputs, targets)
    # not a vacuous match: every sample's map has many non-zero pixels of both signs
    assert bool((reference.flatten(1).abs().amax(1) > 0).all())
    assert float((reference != 0).double().mean()) > 0.3
    assert relative_error(relevance, reference) <= TOLERANCE


@pytest.mark.parametrize("family", FAMILIES)
def test_engine_covers_every_layer(family: str) -> None:
    """No layer of a zoo family falls back to a zennit hook: the engine registers a rule on each (LayerNorm and the
    attention's ``A @ V`` included)."""
    model, _, _ = model_and_inputs(family)
    for variant in VARIANTS.values():
        composite = EngineComposite(variant(model).build_composite(model))
        with composite.context(model):
            pass
        assert dict(composite.hooked) == {}, variant.__name__
        assert len(composite.slots) > 10


def test_engine_leaves_no_hook_and_no_forward_behind() -> None:
    model, inputs, targets = model_and_inputs("resnet")
    LRPEpsilonGammaBox(model).attribute(inputs, targets)
    for module in model.modules():
        assert "forward" not in module.__dict__
        assert not module._forward_hooks and not module._forward_pre_hooks
    assert all(module.inplace for module in model.modules() if isinstance(module, nn.ReLU))


def test_checks_catch_a_wrong_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Epsilon's numerators from the positive weights only, its denominators from all (a plausible slip): the
    equality check and the conservation check (biases zeroed, tiny epsilon) both fail by far more than their
    tolerance."""
    model, inputs, targets = test_zoo_concat.prepared("vgg")
    explainer = LRPUniformEpsilon(model, epsilon=1e-12, stabilizer=1e-12, seed="one_hot")
    right, reference = both_paths(explainer, inputs, targets)
    assert relative_error(right, reference) <= TOLERANCE
    assert float((relevance_sums(right) - 1).abs().max()) < 1e-6

    def wrong(self, module, input, stored, relevance):
        share = relevance / stored["output"]
        return input * direct_input_gradient(module, input, module.weight.detach().clamp(min=0), share)

    monkeypatch.setattr(EpsilonRule, "relevance", wrong)
    wrong_relevance, reference_again = both_paths(explainer, inputs, targets)
    assert torch.equal(reference_again, reference)
    assert relative_error(wrong_relevance, reference) > 100 * TOLERANCE
    assert float((relevance_sums(wrong_relevance) - 1).abs().max()) > 1e-3


class _ReflectPadded(nn.Module):
    """A convolution with reflection padding (no engine rule: it keeps zennit's hook) before a ResNet."""

    def __init__(self, resnet: nn.Module):
        super().__init__()
        self.pad = nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect").double()
        self.resnet = resnet

    def forward(self, x):
        return self.resnet(self.pad(x))


@pytest.mark.parametrize("family", ["resnet", "vit", "reflect-padded"])
def test_configurations_share_one_forward(family: str) -> None:
    """attribute_many gives each configuration's own attribution; on a model the engine covers fully (ResNet, ViT)
    from one forward pass, on one with a layer left to zennit's hook (reflection padding) one attribution each."""
    torch.manual_seed(0)
    model, inputs, targets = model_and_inputs("resnet" if family == "reflect-padded" else family)
    model = _ReflectPadded(model).eval() if family == "reflect-padded" else model
    explainer = LRPEpsilonGammaBox(model)
    explainer.check_inputs(inputs)
    configurations = [{"gamma": 0.25, "epsilon": 1e-6}, {"gamma": 0.01, "epsilon": 0.1}, {"gamma": 1.0}]
    first_layer = next(module for module in model.modules() if isinstance(module, (nn.Conv2d, nn.Linear)))
    calls: list[int] = []
    handle = first_layer.register_forward_hook(lambda *args: calls.append(1))
    try:
        shared = explainer.attribute_many(configurations, inputs, targets)
    finally:
        handle.remove()
    assert len(calls) == (len(configurations) if family == "reflect-padded" else 1)
    separate = [explainer.set_kwargs(**configuration).attribute(inputs, targets) for configuration in configurations]
    for one, other in zip(shared, separate):
        assert relative_error(one, other) <= 1e-12
    assert relative_error(separate[0], separate[1]) > 1e-3  # the configurations differ, so the check could fail


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("bounds", ["numbers", "per-channel", "per-pixel"])
def test_box_rule_equals_the_zennit_hook(groups: int, bounds: str) -> None:
    """The first layer's z-box rule with the bounds a user may give (numbers, a tensor per channel, one per pixel
    and sample) on a plain and a grouped convolution."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, groups=groups), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 5),
    ).double().eval()  # fmt: skip
    inputs = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    targets = model(inputs).argmax(1)
    spread = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).view(1, 3, 1, 1)
    low, high = {
        "numbers": (-3.0, 3.0),
        "per-channel": (-spread, spread),
        "per-pixel": (inputs.min() - torch.rand_like(inputs), inputs.max() + torch.rand_like(inputs)),
    }[bounds]
    relevance, reference = both_paths(LRPEpsilonGammaBox(model, low=low, high=high), inputs, targets)
    assert float((reference != 0).double().mean()) > 0.9
    assert relative_error(relevance, reference) <= TOLERANCE


_FAULTS = """
import resource, sys, torch
from explainers.engine import keep_freed_memory
kept = sys.argv[1] == "kept" and keep_freed_memory()
torch.ones(2**24)  # 64 MiB
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    torch.ones(2**24)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and Linux's fault counts")
def test_kept_memory_serves_large_tensors_without_page_faults() -> None:
    """Five 64 MiB tensors, each freed before the next: mapped afresh by default (a page fault per 4 KiB page), from
    the memory the first one left with ``keep_freed_memory``."""
    runs = {}
    for mode in ("default", "kept"):
        output = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
        kept, faults = output.stdout.split()
        runs[mode] = (kept == "True", int(faults))
    assert runs["kept"][0] and not runs["default"][0]
    pages = 5 * 2**26 // 4096
    assert runs["default"][1] > pages / 2
    assert runs["kept"][1] < runs["default"][1] / 4
