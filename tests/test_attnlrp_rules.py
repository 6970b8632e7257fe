"""AttnLRP's rules, one operation at a time, against values derived by hand from the paper's formulas (Achtibat et
al., ICML 2024): relevance r given at an operation's output, the relevance of its inputs read as input times gradient
(the form in which the rules are written)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from explainers.attnlrp import AttnLRPMode


def _random(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _relevance(output: torch.Tensor, inputs: tuple[torch.Tensor, ...], r: torch.Tensor) -> list[torch.Tensor]:
    """The inputs' relevance when the output holds ``r``: the gradient seeded with r / output, times each input."""
    gradients = torch.autograd.grad(output, inputs, r / output, allow_unused=True)
    return [(x * g).detach() if g is not None else torch.zeros_like(x) for x, g in zip(inputs, gradients)]


def test_softmax_is_its_taylor_rule_and_records_the_bias_term() -> None:
    x = _random(2, 5, seed=0).requires_grad_(True)
    r = _random(2, 5, seed=1)
    mode = AttnLRPMode()
    with mode:
        s = F.softmax(x, dim=-1)
    (relevance,) = _relevance(s, (x,), r)
    expected = x.detach() * (r - s.detach() * r.sum(-1, keepdim=True))  # R_i = x_i (r_i - s_i sum_j r_j)
    torch.testing.assert_close(relevance, expected)
    (absorbed,) = mode.absorbed
    torch.testing.assert_close(absorbed, r.sum(-1) - expected.sum(-1))  # what the bias term took, per sample
    assert float(absorbed.abs().min()) > 1e-3  # not a vacuous record


def test_a_product_of_two_activations_splits_uniformly() -> None:
    a, b = _random(2, 3, 4, seed=2).requires_grad_(True), _random(2, 4, 5, seed=3).requires_grad_(True)
    r = _random(2, 3, 5, seed=4)
    with AttnLRPMode():
        z = torch.matmul(a, b)
    relevance_a, relevance_b = _relevance(z, (a, b), r)
    # z_ij = sum_k a_ik b_kj: each contribution a_ik b_kj / z_ij of r_ij, half to each factor
    share = (
        (a.detach()[..., :, :, None] * b.detach()[..., None, :, :]) / z.detach()[..., :, None, :] * r[..., :, None, :]
    )
    torch.testing.assert_close(relevance_a, 0.5 * share.sum(-1))
    torch.testing.assert_close(relevance_b, 0.5 * share.sum(-3))
    torch.testing.assert_close(relevance_a.sum() + relevance_b.sum(), r.sum())


def test_an_element_wise_gate_splits_half_half_and_a_constant_factor_passes_all() -> None:
    gate, up = _random(3, 6, seed=5).requires_grad_(True), _random(3, 6, seed=6).requires_grad_(True)
    r = _random(3, 6, seed=7)
    with AttnLRPMode():
        product = F.silu(gate) * up
        scaled = up * 0.5
    relevance_gate, relevance_up = _relevance(product, (gate, up), r)
    torch.testing.assert_close(relevance_up, r / 2)
    torch.testing.assert_close(relevance_gate, r / 2, rtol=1e-9, atol=1e-9)  # silu: the identity rule in between
    (relevance,) = _relevance(scaled, (up,), r)
    torch.testing.assert_close(relevance, r)


def test_layer_norm_holds_its_standard_deviation_constant() -> None:
    x = _random(2, 7, seed=8).requires_grad_(True)
    weight = _random(7, seed=9)
    r = _random(2, 7, seed=10)
    with AttnLRPMode():
        y = F.layer_norm(x, (7,), weight, None, 1e-5)
    torch.testing.assert_close(y, F.layer_norm(x.detach(), (7,), weight, None, 1e-5))
    (relevance,) = _relevance(y, (x,), r)
    # y = W x with W = diag(w / std) (I - 11^T / N): R_x = x * W^T (r / y)
    std = (x.detach().var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
    share = weight * r / y.detach()
    expected = x.detach() / std * (share - share.mean(-1, keepdim=True))
    torch.testing.assert_close(relevance, expected)
    torch.testing.assert_close(relevance.sum(-1), r.sum(-1))  # no bias: conserved


def test_rms_norm_and_activations_pass_relevance_unchanged() -> None:
    x = _random(2, 8, seed=11).requires_grad_(True)
    weight = _random(8, seed=12)
    r = _random(2, 8, seed=13)
    with AttnLRPMode():
        normalised = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * weight
        activated = F.gelu(x)
    torch.testing.assert_close(_relevance(normalised, (x,), r)[0], r)
    torch.testing.assert_close(_relevance(activated, (x,), r)[0], r, rtol=1e-9, atol=1e-9)


def test_a_dense_layer_takes_the_epsilon_rule() -> None:
    x = _random(3, 4, seed=14).requires_grad_(True)
    weight, bias = _random(5, 4, seed=15), _random(5, seed=16)
    r = _random(3, 5, seed=17)
    with AttnLRPMode(epsilon=0.1):
        z = F.linear(x, weight, bias)
    (relevance,) = _relevance(z, (x,), r)
    total = z.detach()
    stabilised = total + 0.1 * total.sign()  # no z is exactly 0 here
    torch.testing.assert_close(relevance, x.detach() * ((r / stabilised) @ weight))


@pytest.mark.parametrize("causal", [False, True])
def test_scaled_dot_product_attention_is_computed_as_its_parts(causal: bool) -> None:
    q, k, v = (_random(1, 2, 4, 3, seed=s).requires_grad_(True) for s in (18, 19, 20))
    r = _random(1, 2, 4, 3, seed=21)
    with AttnLRPMode():
        fused = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    with AttnLRPMode():
        scores = torch.matmul(q, k.transpose(-1, -2)) / 3**0.5
        if causal:
            scores = scores.masked_fill(~torch.ones(4, 4, dtype=torch.bool).tril(), torch.finfo(scores.dtype).min)
        eager = torch.matmul(F.softmax(scores, dim=-1), v)
    torch.testing.assert_close(fused, eager)
    for one, other in zip(_relevance(fused, (q, k, v), r), _relevance(eager, (q, k, v), r)):
        torch.testing.assert_close(one, other)


def test_cp_lrp_sends_no_relevance_through_the_attention_weights() -> None:
    q, k, v = (_random(1, 2, 4, 3, seed=s).requires_grad_(True) for s in (22, 23, 24))
    r = _random(1, 2, 4, 3, seed=25)
    with AttnLRPMode(attention="cp"):
        output = F.scaled_dot_product_attention(q, k, v)
    relevance_q, relevance_k, relevance_v = _relevance(output, (q, k, v), r)
    assert float(relevance_q.abs().max()) == 0.0 and float(relevance_k.abs().max()) == 0.0
    torch.testing.assert_close(relevance_v.sum(), r.sum())  # A @ V with A constant: LRP-0 conserves
    with AttnLRPMode():
        output = F.scaled_dot_product_attention(q, k, v)
    assert float(_relevance(output, (q, k, v), r)[0].abs().max()) > 1e-3  # AttnLRP does reach the query


def test_an_unknown_attention_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="attention must be one of"):
        AttnLRPMode(attention="softmax")
