"""The conserving z-plus and alpha-beta rules: equal to zennit's where zennit's conserves, conserving elsewhere; the
LayerNorm rule: the epsilon rule on LayerNorm's linear map once its standard deviation is held constant; the direct
passes of z-plus and of the gamma rule: equal to the autograd passes and to zennit's Gamma."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.convnext import LayerNorm2d
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonGammaBox, LayerMapComposite
from zennit.core import Stabilizer
from zennit.rules import AlphaBeta, Epsilon, Gamma, ZPlus

from explainers.rules import (
    ConservingAlphaBeta,
    ConservingLayerNorm,
    ConservingZPlus,
    FastEpsilonGammaBox,
    FastGamma,
    _gamma,
    _zplus,
)
from explainers.rules._direct import takes_direct_path


def layer_relevance(rule, layer: nn.Module, x: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """The relevance ``rule`` gives the input of ``layer`` for ``relevance`` at its output."""
    composite = LayerMapComposite(layer_map=[((nn.Conv2d, nn.Linear), rule)])
    with Gradient(model=layer, composite=composite) as attributor:
        _, result = attributor(x.clone().requires_grad_(), relevance)
    return result


def parts(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The positive and negative contributions z+_j, z-_j of every output neuron (bias zero)."""

    def apply(weight, inputs):
        if isinstance(layer, nn.Linear):
            return nn.functional.linear(inputs, weight)
        return nn.functional.conv2d(inputs, weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)

    w_plus, w_minus = layer.weight.clamp(min=0), layer.weight.clamp(max=0)
    x_plus, x_minus = x.clamp(min=0), x.clamp(max=0)
    return apply(w_plus, x_plus) + apply(w_minus, x_minus), apply(w_minus, x_plus) + apply(w_plus, x_minus)


def conv(in_channels: int, out_channels: int, groups: int = 1) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(in_channels, out_channels, 3, groups=groups, bias=False).double()


def linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(12, 7, bias=False).double()


def seed(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A positive relevance at every output neuron."""
    torch.manual_seed(1)
    with torch.no_grad():
        return torch.rand_like(layer(x)) + 0.1


def assert_same_relevance(first, second, layer: nn.Module, x: torch.Tensor, relevance: torch.Tensor) -> None:
    """``first`` and ``second`` share ``relevance`` out to ``layer``'s input alike (1e-10 relative, 1e-14 absolute)."""
    torch.testing.assert_close(
        layer_relevance(first, layer, x, relevance),
        layer_relevance(second, layer, x, relevance),
        rtol=1e-10,
        atol=1e-14,
    )


TINY = 1e-12
# zennit's rules without a stabilizer (exact shares), against ours with a stabilizer: where every part is larger than
# the stabilizer, ours divide by the exact part too (the stabilizer only marks empty parts)
RULE_PAIRS = {
    "zplus": (lambda: ZPlus(stabilizer=0.0), lambda: ConservingZPlus(stabilizer=1e-6)),
    "alpha2beta1": (lambda: AlphaBeta(2, 1, stabilizer=0.0), lambda: ConservingAlphaBeta(2, 1, stabilizer=1e-6)),
    "alpha1beta0": (lambda: AlphaBeta(1, 0, stabilizer=0.0), lambda: ConservingAlphaBeta(1, 0, stabilizer=1e-6)),
}

# zennit's rules as the variants used them (stabilized), for the leak they show on empty parts
STABILIZED_ZENNIT = {
    "zplus": lambda: ZPlus(stabilizer=TINY),
    "alpha2beta1": lambda: AlphaBeta(2, 1, stabilizer=TINY),
    "alpha1beta0": lambda: AlphaBeta(1, 0, stabilizer=TINY),
}


def mixed_layers():
    """Layers and inputs where every output neuron has positive and negative contributions."""
    torch.manual_seed(2)
    return {
        "conv": (conv(4, 5), torch.randn(2, 4, 6, 6, dtype=torch.float64)),
        "linear": (linear(), torch.randn(3, 12, dtype=torch.float64)),
    }


@pytest.mark.parametrize("rule", list(RULE_PAIRS))
@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_equal_to_zennit_where_zennit_conserves(rule, kind):
    layer, x = mixed_layers()[kind]
    positive, negative = parts(layer, x)
    assert bool((positive > 0).all() and (negative < 0).all()), "every neuron must have both parts"
    zennit_rule, ours = RULE_PAIRS[rule]
    relevance = seed(layer, x)
    ours_relevance = layer_relevance(ours(), layer, x, relevance)
    # the same values up to the order of float64 sums (x+ and x- may pass through the layer side by side)
    torch.testing.assert_close(
        ours_relevance, layer_relevance(zennit_rule(), layer, x, relevance), rtol=1e-12, atol=1e-14
    )


def test_alpha_beta_other_parameters_equal_to_zennit():
    layer, x = mixed_layers()["conv"]
    relevance = seed(layer, x)
    ours = layer_relevance(ConservingAlphaBeta(1.5, 0.5, stabilizer=TINY), layer, x, relevance)
    theirs = layer_relevance(AlphaBeta(1.5, 0.5, stabilizer=0.0), layer, x, relevance)
    torch.testing.assert_close(ours, theirs, rtol=1e-13, atol=1e-15)


def one_signed_depthwise() -> tuple[nn.Conv2d, torch.Tensor]:
    """A depthwise 3x3 convolution on a positive input: channel 0 has only negative weights (no positive part: z-plus
    loses it, alpha2-beta1 gives -R), channel 1 only positive ones (no negative part: alpha2-beta1 gives 2R), channel 2
    mixed weights; plus random channels as they come."""
    layer = conv(5, 5, groups=5)
    with torch.no_grad():
        layer.weight[0] = -layer.weight[0].abs()
        layer.weight[1] = layer.weight[1].abs()
    torch.manual_seed(3)
    x = torch.rand(2, 5, 6, 6, dtype=torch.float64)
    x[:, 3:] = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    return layer, x


def sums(relevance: torch.Tensor) -> torch.Tensor:
    return relevance.flatten(1).sum(1)


@pytest.mark.parametrize("rule", list(RULE_PAIRS))
def test_conserves_where_a_part_is_empty_and_zennit_does_not(rule):
    layer, x = one_signed_depthwise()
    positive, negative = parts(layer, x)
    assert bool((positive == 0).any()) and bool((negative == 0).any())
    relevance = seed(layer, x)
    _, ours = RULE_PAIRS[rule]
    zennit_rule = STABILIZED_ZENNIT[rule]
    torch.testing.assert_close(sums(layer_relevance(ours(), layer, x, relevance)), sums(relevance), rtol=1e-9, atol=0)
    # the check would catch zennit's leak
    leak = (sums(layer_relevance(zennit_rule(), layer, x, relevance)) - sums(relevance)).abs() / sums(relevance)
    assert bool((leak > 0.05).all()), f"zennit's {rule} should leak here, leak {leak.tolist()}"


@pytest.mark.parametrize(
    "rule",
    [lambda: ConservingZPlus(stabilizer=TINY), lambda: ConservingAlphaBeta(2, 1, stabilizer=TINY)],
    ids=["zplus", "alpha2beta1"],
)
def test_fallback_is_the_z_rule_on_a_neuron_with_negative_contributions_only(rule):
    """Where z+ = 0 every contribution is negative and the fallback shares relevance as LRP-0 does."""
    layer, x = one_signed_depthwise()
    layer, x = nn.Conv2d(1, 1, 3, bias=False).double(), x[:, :1]
    with torch.no_grad():
        layer.weight.copy_(-torch.rand_like(layer.weight) - 0.1)
    relevance = seed(layer, x)
    assert bool((parts(layer, x)[0] == 0).all())
    assert_same_relevance(rule(), Epsilon(epsilon=TINY), layer, x, relevance)


def test_conserving_zplus_equals_conserving_alpha1_beta0():
    """z-plus plus LRP-0 at the empty neurons (an extra pass run only then) gives what alpha-beta's four passes give."""
    layer, x = one_signed_depthwise()
    relevance = seed(layer, x)
    assert_same_relevance(
        ConservingZPlus(stabilizer=TINY), ConservingAlphaBeta(1, 0, stabilizer=TINY), layer, x, relevance
    )


def test_alpha_beta_parameters_are_checked():
    with pytest.raises(ValueError, match="alpha - beta"):
        ConservingAlphaBeta(3, 1)
    with pytest.raises(ValueError, match="non-negative"):
        ConservingAlphaBeta(-1, -2)


def _layer_norm_oracle(norm: nn.LayerNorm, x: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """LRP-0 on the explicit matrix W = diag(gamma) (I - 11^T / N) / std of each row of ``x`` (N features, last dim)."""
    n = x.shape[-1]
    rows = []
    for row, row_relevance in zip(x.reshape(-1, n), relevance.reshape(-1, n)):
        std = (row.var(unbiased=False) + norm.eps).sqrt()
        matrix = torch.diag(norm.weight.detach()) @ (torch.eye(n, dtype=x.dtype) - 1.0 / n) / std
        contributions = matrix * row  # z_ij = W_ij x_j
        rows.append((contributions / contributions.sum(1, keepdim=True) * row_relevance[:, None]).sum(0))
    return torch.stack(rows).reshape(x.shape)


@pytest.mark.parametrize("channels_first", [False, True])
def test_layer_norm_rule_is_lrp0_on_its_linear_map(channels_first):
    """An oracle: the explicit matrix of the centred, scaled map; the relevance is conserved and zeros get none."""
    torch.manual_seed(0)
    norm = (LayerNorm2d(6) if channels_first else nn.LayerNorm(6)).double()
    nn.init.uniform_(norm.weight, 0.5, 1.5)
    nn.init.zeros_(norm.bias)
    x = torch.randn(3, 4, 6, dtype=torch.float64)
    x[0, 0, 2] = 0.0
    relevance = torch.randn(3, 4, 6, dtype=torch.float64)
    expected = _layer_norm_oracle(norm, x, relevance)
    if channels_first:  # (B, C, H, W) with the 6 channels in dim 1
        x, relevance, expected = (t.permute(0, 2, 1).unsqueeze(-1) for t in (x, relevance, expected))
    composite = LayerMapComposite(layer_map=[(nn.LayerNorm, ConservingLayerNorm(stabilizer=1e-300))])
    with Gradient(model=norm, composite=composite) as attributor:
        _, result = attributor(x.clone().requires_grad_(), relevance)
    assert torch.allclose(result, expected, atol=1e-10, rtol=0)
    assert torch.allclose(result.sum(), relevance.sum(), atol=1e-10, rtol=0)
    zero = (0, 2, 0, 0) if channels_first else (0, 0, 2)
    assert float(result[zero]) == 0.0
    assert not torch.allclose(result, relevance, atol=1e-3)  # not the identity rule


@pytest.mark.parametrize("groups", [1, 2, 6])
@pytest.mark.parametrize("signed", [False, True], ids=["after_relu", "signed"])
def test_zplus_fallback_on_some_channels_equals_alpha1_beta0(groups, signed):
    """The fallback runs on the output channels (groups) holding an empty neuron only, and the pass of negative inputs
    is skipped on an input without any: the result stays the four-pass alpha1-beta0 oracle's, biases included."""
    torch.manual_seed(4)
    layer = nn.Conv2d(6, 6, 3, groups=groups, bias=True).double()
    with torch.no_grad():
        layer.bias.copy_(layer.bias.abs())  # positive parts everywhere but in output channel 4
        layer.weight[4] = -layer.weight[4].abs()  # no positive contribution on a non-negative input
        layer.bias[4] = -0.1
    x = torch.rand(2, 6, 6, 6, dtype=torch.float64)
    if signed:
        x[:, 0] -= 0.5  # only channel 0 signed: output channel 4 of a grouped layer stays empty
    relevance = seed(layer, x)
    assert_same_relevance(
        ConservingZPlus(stabilizer=TINY), ConservingAlphaBeta(1, 0, stabilizer=TINY), layer, x, relevance
    )


# -- the direct (graph-free) passes on convolutions and dense layers -------------------------------------------------

DIRECT_LAYERS = {
    "conv": lambda: nn.Conv2d(6, 8, 3, padding=1),
    "grouped": lambda: nn.Conv2d(6, 4, 3, groups=2),
    "depthwise": lambda: nn.Conv2d(6, 6, 3, padding=1, groups=6),
    "stride2": lambda: nn.Conv2d(6, 5, 3, stride=2, padding=1),
    "dilation2": lambda: nn.Conv2d(6, 4, 3, padding=2, dilation=2),
    "conv1d": lambda: nn.Conv1d(6, 4, 3, padding=1),
    "conv3d": lambda: nn.Conv3d(6, 4, 3, padding=1, groups=2),
    "linear": lambda: nn.Linear(6, 5),
}
INPUT_SHAPES = {"conv1d": (2, 6, 9), "conv3d": (2, 6, 5, 5, 5), "linear": (3, 6)}
ANY_LAYER = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.ConvTranspose2d)


def direct_case(kind: str, signed: bool) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A layer (float64, biases of both signs) whose output channel 0 has only negative weights and a negative bias on
    input channels 0-1 (zero weights elsewhere): no positive contribution where channels 0-1 are non-negative, so
    z-plus falls back there; ``signed``: the other channels hold negative values. With a relevance seed."""
    torch.manual_seed(5)
    layer = DIRECT_LAYERS[kind]().double()
    with torch.no_grad():
        layer.weight[0] = 0.0
        per_group = layer.weight.shape[1]
        layer.weight[0, : min(2, per_group)] = -torch.rand_like(layer.weight[0, : min(2, per_group)]) - 0.1
        layer.bias[0] = -0.2
    x = torch.rand(*INPUT_SHAPES.get(kind, (2, 6, 7, 7)), dtype=torch.float64)
    if signed:
        x[:, 2:] -= 0.5
    return layer, x, torch.randn_like(layer(x))


def relevance_of(rule, layer: nn.Module, x: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    composite = LayerMapComposite(layer_map=[(ANY_LAYER, rule)])
    with Gradient(model=layer, composite=composite) as attributor:
        _, result = attributor(x.clone().requires_grad_(), relevance)
    return result


def generic(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules' autograd passes everywhere (the reference for the direct ones)."""
    for module in (_zplus, _gamma):
        monkeypatch.setattr(module, "takes_direct_path", lambda module, zero_params, input: False)


@pytest.mark.parametrize("kind", list(DIRECT_LAYERS))
@pytest.mark.parametrize("signed", [False, True], ids=["nonnegative", "signed"])
@pytest.mark.parametrize("zero_params", [None, ["bias"]], ids=["bias", "no_bias"])
def test_direct_zplus_equals_its_autograd_passes(kind, signed, zero_params, monkeypatch):
    """The direct gradients, the fallback's z_j read from the layer's output (less a zeroed bias), the restriction to
    the channels holding an empty neuron: the autograd passes' result, fallback included."""
    layer, x, relevance = direct_case(kind, signed)
    assert takes_direct_path(layer, zero_params, x)
    calls = []
    fallback = ConservingZPlus._lrp0_at
    monkeypatch.setattr(ConservingZPlus, "_lrp0_at", lambda self, *args: calls.append(1) or fallback(self, *args))
    direct = relevance_of(ConservingZPlus(stabilizer=TINY, zero_params=zero_params), layer, x, relevance)
    assert calls == [1], "the fallback must run"
    generic(monkeypatch)
    reference = relevance_of(ConservingZPlus(stabilizer=TINY, zero_params=zero_params), layer, x, relevance)
    torch.testing.assert_close(direct, reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["conv", "depthwise", "linear"])
@pytest.mark.parametrize("signed", [False, True], ids=["nonnegative", "signed"])
@pytest.mark.parametrize("stabilizer", [0.0, Stabilizer(TINY, clip=True)], ids=["zero", "clip"])
def test_direct_zplus_other_stabilizers_equal_its_autograd_passes(kind, signed, stabilizer, monkeypatch):
    """A zero epsilon (empty means exactly 0) and a stabilizer other than zennit's plain one (boolean masks)."""
    layer, x, relevance = direct_case(kind, signed)
    direct = relevance_of(ConservingZPlus(stabilizer=stabilizer), layer, x, relevance)
    generic(monkeypatch)
    torch.testing.assert_close(direct, relevance_of(ConservingZPlus(stabilizer=stabilizer), layer, x, relevance))


@pytest.mark.parametrize("kind", list(DIRECT_LAYERS))
@pytest.mark.parametrize("signed", [False, True], ids=["nonnegative", "signed"])
def test_direct_zplus_conserves_and_equals_alpha1_beta0(kind, signed):
    """Biases zeroed: the input relevance sums to the output relevance, and equals the four-pass oracle."""
    layer, x, relevance = direct_case(kind, signed)
    relevance = relevance.abs() + 0.1
    ours = relevance_of(ConservingZPlus(stabilizer=TINY, zero_params=["bias"]), layer, x, relevance)
    oracle = relevance_of(ConservingAlphaBeta(1, 0, stabilizer=TINY, zero_params=["bias"]), layer, x, relevance)
    torch.testing.assert_close(ours, oracle, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sums(ours), sums(relevance), rtol=1e-10, atol=0)


def test_direct_zplus_fallback_is_lrp0_on_a_layer_without_positive_weights():
    """Every neuron empty (negative weights, non-negative input): the result is LRP-0, from the layer's own output."""
    torch.manual_seed(6)
    layer = nn.Conv2d(3, 4, 3, padding=1, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(-layer.weight.abs() - 0.01)
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    relevance = torch.rand(2, 4, 6, 6, dtype=torch.float64)
    expected = relevance_of(Epsilon(epsilon=TINY), layer, x, relevance)
    torch.testing.assert_close(relevance_of(ConservingZPlus(stabilizer=TINY), layer, x, relevance), expected)


class NegateInPlace(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.neg_()


@pytest.mark.parametrize("rule", [FastGamma, ConservingZPlus])
def test_direct_rules_after_an_in_place_operation_on_the_output(rule):
    """An in-place operation after the layer changes the output the rule stored: the unmodified pass (gamma's signs,
    z-plus' fallback) is computed again, so the result is the layer's own for the relevance the operation passes."""
    layer, x, relevance = direct_case("conv", signed=True)
    composite = LayerMapComposite(layer_map=[(nn.Conv2d, rule(stabilizer=TINY))])
    with Gradient(model=nn.Sequential(layer, NegateInPlace()), composite=composite) as attributor:
        result = attributor(x.clone().requires_grad_(), relevance)[1]
    torch.testing.assert_close(result, relevance_of(rule(stabilizer=TINY), layer, x, -relevance))


GAMMA_CASES = [(0.25, None), (1.0, None), (0.25, ["bias"])]


@pytest.mark.parametrize("kind", list(DIRECT_LAYERS))
@pytest.mark.parametrize("signed", [False, True], ids=["nonnegative", "signed"])
@pytest.mark.parametrize("gamma, zero_params", GAMMA_CASES, ids=["gamma0.25", "gamma1", "no_bias"])
def test_fast_gamma_equals_zennit_gamma(kind, signed, gamma, zero_params):
    layer, x, relevance = direct_case(kind, signed)
    assert takes_direct_path(layer, zero_params, x)
    theirs = relevance_of(Gamma(gamma=gamma, stabilizer=1e-6, zero_params=zero_params), layer, x, relevance)
    ours = relevance_of(FastGamma(gamma=gamma, stabilizer=1e-6, zero_params=zero_params), layer, x, relevance)
    assert not torch.allclose(theirs, relevance_of(Epsilon(epsilon=1e-6), layer, x, relevance), rtol=1e-3)
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kind", list(DIRECT_LAYERS))
def test_fast_gamma_without_relevance_where_z_is_negative(kind, monkeypatch):
    """Where no relevance reaches a neuron with z < 0 (a layer only a ReLU reads), the pass through the
    negative-boosted weights is left out and the result is still zennit's; with relevance there, it runs."""
    layer, x, relevance = direct_case(kind, signed=False)
    with torch.no_grad():
        output = layer(x)
    assert bool((output < 0).any()) and bool((output > 0).any())
    calls = []
    direct = _gamma.direct_input_gradient
    monkeypatch.setattr(_gamma, "direct_input_gradient", lambda *args: calls.append(1) or direct(*args))
    for seed_relevance, passes in ((relevance * (output > 0), 1), (relevance, 2)):
        calls.clear()
        ours = relevance_of(FastGamma(gamma=0.25, stabilizer=1e-6), layer, x, seed_relevance)
        theirs = relevance_of(Gamma(gamma=0.25, stabilizer=1e-6), layer, x, seed_relevance)
        assert len(calls) == passes
        assert float(theirs.abs().amax()) > 0
        torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize(
    "stabilizer", [Stabilizer(1e-3, clip=True), lambda z: z + 1e-6 * (z >= 0).to(z) * 2 - 1e-6], ids=["clip", "fn"]
)
def test_fast_gamma_other_stabilizers_equal_zennit_gamma(stabilizer):
    layer, x, relevance = direct_case("conv", signed=True)
    theirs = relevance_of(Gamma(gamma=0.5, stabilizer=stabilizer), layer, x, relevance)
    torch.testing.assert_close(relevance_of(FastGamma(gamma=0.5, stabilizer=stabilizer), layer, x, relevance), theirs)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (nn.ConvTranspose2d(6, 4, 3), (2, 6, 7, 7)),
        (nn.Conv2d(6, 4, 3, padding=1, padding_mode="reflect"), (2, 6, 7, 7)),
        (nn.Conv1d(6, 4, 3, padding=1), (6, 9)),
    ],
    ids=["transposed", "reflect", "unbatched"],
)
def test_rules_elsewhere_run_the_autograd_passes(layer, shape):
    """Layers without the direct passes: zennit's own Gamma, and z-plus' autograd passes (against alpha1-beta0)."""
    torch.manual_seed(7)
    layer = layer.double()
    x = torch.randn(*shape, dtype=torch.float64)
    assert not takes_direct_path(layer, None, x)
    relevance = torch.randn_like(layer(x))
    theirs = relevance_of(Gamma(gamma=0.25), layer, x, relevance)
    assert torch.equal(relevance_of(FastGamma(gamma=0.25), layer, x, relevance), theirs)
    torch.testing.assert_close(
        relevance_of(ConservingZPlus(stabilizer=TINY), layer, x, relevance),
        relevance_of(ConservingAlphaBeta(1, 0, stabilizer=TINY), layer, x, relevance),
    )


def test_fast_epsilon_gamma_box_equals_zennit_composite():
    """The composite of LRPEpsilonGammaBox against zennit's EpsilonGammaBox (BatchNorm merged, an in-place ReLU)."""
    torch.manual_seed(8)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        nn.Conv2d(8, 6, 1),
        nn.Flatten(),
        nn.Linear(6 * 8 * 8, 5),
    ).double()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.running_mean, -0.5, 0.5)
            nn.init.uniform_(module.running_var, 0.5, 1.5)
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.5, 0.5)
    model.eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    seed_relevance = torch.eye(5, dtype=torch.float64)[[1, 3]]
    results = []
    for composite in (EpsilonGammaBox, FastEpsilonGammaBox):
        built = composite(low=-3.0, high=3.0, gamma=0.3, canonizers=[SequentialMergeBatchNorm()])
        with Gradient(model=model, composite=built) as attributor:
            results.append(attributor(x.clone().requires_grad_(), seed_relevance)[1])
    torch.testing.assert_close(results[1], results[0], rtol=1e-9, atol=1e-12)
    assert results[0].abs().sum() > 0


@pytest.mark.parametrize("rule", [ConservingZPlus, FastGamma])
def test_direct_rules_pass_a_nan_on(rule):
    """A NaN in the input gives a NaN in the relevance (reported by the explainers), not an error or a finite map."""
    layer, x, relevance = direct_case("conv", signed=False)
    x[0, 0, 0, 0] = float("nan")
    assert bool(relevance_of(rule(stabilizer=TINY), layer, x, relevance).isnan().any())
