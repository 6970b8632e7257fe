"""The sequence canonizers change nothing a user can see: same outputs, same model afterwards, clear refusals."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import LayerMapComposite, layer_map_base
from zennit.rules import Epsilon
from zennit.types import Convolution

from explainers._conservation import token_relevance
from explainers.canonizers import sequence_canonizers
from explainers.canonizers._attention import AttentionCanonizer
from explainers.canonizers._recurrent import RecurrentCanonizer
from explainers.rules import sequence_layer_map


def uniform_epsilon(model: nn.Module, epsilon: float = 1e-6) -> LayerMapComposite:
    """The composite LRPUniformEpsilon builds, with the sequence rules prepended."""
    return LayerMapComposite(
        layer_map=sequence_layer_map(epsilon, epsilon)
        + layer_map_base(epsilon)
        + [(Convolution, Epsilon(epsilon)), (nn.Linear, Epsilon(epsilon))],
        canonizers=[SequentialMergeBatchNorm()] + sequence_canonizers(model),
    )


class Call(nn.Module):
    """Wrap a module so that it is called with fixed extra arguments (masks, states, flags)."""

    def __init__(self, module: nn.Module, *args, **kwargs):
        super().__init__()
        self.module, self.args, self.kwargs = module, args, kwargs

    def forward(self, x):
        return self.module(x, *self.args, **self.kwargs)


class SelfAttention(Call):
    """Call an attention module with the input as query, key and value."""

    def forward(self, x):
        return self.module(x, x, x, *self.args, **self.kwargs)


def _mha(**kwargs):
    return nn.MultiheadAttention(16, 4, **kwargs)


def _causal(length):
    return nn.Transformer.generate_square_subsequent_mask(length)


PADDING = torch.tensor([[False] * 7, [False] * 5 + [True] * 2, [False] * 6 + [True], [False] * 7])

# (name, module, input): every module output (tuples included) must be unchanged by the canonizers
CASES = [
    ("mha", lambda: SelfAttention(_mha(), need_weights=True), (7, 4, 16)),
    (
        "mha-batch-first-masks",
        lambda: SelfAttention(
            _mha(batch_first=True),
            key_padding_mask=PADDING,
            attn_mask=_causal(7) < 0,
            average_attn_weights=False,
        ),
        (4, 7, 16),
    ),
    (
        "mha-float-masks",
        lambda: SelfAttention(
            _mha(batch_first=True),
            key_padding_mask=PADDING.float() * -1e9,
            attn_mask=_causal(7),
        ),
        (4, 7, 16),
    ),
    ("mha-kdim-vdim-no-bias", lambda: CrossAttention(), (4, 7, 16)),
    ("mha-unbatched", lambda: SelfAttention(_mha()), (7, 16)),
    (
        "encoder-post-norm",
        lambda: Call(
            nn.TransformerEncoder(
                nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True), 2, enable_nested_tensor=False
            ),
            src_key_padding_mask=PADDING,
        ),
        (4, 7, 16),
    ),
    (
        "encoder-pre-norm-gelu-causal",
        lambda: Call(
            nn.TransformerEncoder(
                nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, activation="gelu", norm_first=True),
                2,
                norm=nn.LayerNorm(16),
                enable_nested_tensor=False,
            ),
            mask=_causal(7),
            is_causal=True,
        ),
        (7, 4, 16),
    ),
    (
        "decoder-memory-masks",
        lambda: Call(
            nn.TransformerDecoder(nn.TransformerDecoderLayer(16, 2, 32, dropout=0.0, batch_first=True), 2),
            torch.randn(4, 5, 16),
            tgt_mask=_causal(7),
            tgt_is_causal=True,
            memory_key_padding_mask=PADDING[:, 2:],
        ),
        (4, 7, 16),
    ),
    (
        "decoder-layer-pre-norm",
        lambda: Call(
            nn.TransformerDecoderLayer(16, 2, 32, dropout=0.0, norm_first=True),
            torch.randn(5, 4, 16),
        ),
        (7, 4, 16),
    ),
    ("lstm", lambda: nn.LSTM(16, 8), (7, 4, 16)),
    (
        "lstm-batch-first-2layer-bi",
        lambda: nn.LSTM(16, 8, num_layers=2, bidirectional=True, batch_first=True),
        (4, 7, 16),
    ),
    (
        "lstm-state-given",
        lambda: Call(nn.LSTM(16, 8, num_layers=2), (torch.randn(2, 4, 8), torch.randn(2, 4, 8))),
        (7, 4, 16),
    ),
    ("lstm-unbatched-no-bias", lambda: nn.LSTM(16, 8, bias=False, bidirectional=True), (7, 16)),
    ("gru-2layer-bi", lambda: nn.GRU(16, 8, num_layers=2, bidirectional=True, batch_first=True), (4, 7, 16)),
    ("gru-state-given", lambda: Call(nn.GRU(16, 8), torch.randn(1, 4, 8)), (7, 4, 16)),
    ("rnn-tanh", lambda: nn.RNN(16, 8, num_layers=2), (7, 4, 16)),
    ("rnn-relu-bi", lambda: nn.RNN(16, 8, nonlinearity="relu", bidirectional=True, batch_first=True), (4, 7, 16)),
]


class CrossAttention(nn.Module):
    """Attention with a different key/value width, no bias, queries and keys/values from different inputs."""

    def __init__(self):
        super().__init__()
        self.attention = nn.MultiheadAttention(16, 2, bias=False, kdim=12, vdim=10, batch_first=True)
        self.keys, self.values = nn.Linear(16, 12), nn.Linear(16, 10)

    def forward(self, x):
        return self.attention(x, self.keys(x[:, :5]), self.values(x[:, :5]))


def _built(make, shape) -> tuple[nn.Module, torch.Tensor]:
    """A case's model in eval mode and a random input of its shape, both from seed 0."""
    torch.manual_seed(0)
    return make().eval(), torch.randn(*shape)


def _flatten(output):
    if isinstance(output, (tuple, list)):
        return [tensor for item in output for tensor in _flatten(item)]
    return [] if output is None else [output]


def _attribute(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Relevance of the first output (all ones) at the input, as zennit's Gradient attributor computes it."""
    x = x.clone().requires_grad_()
    with uniform_epsilon(model).context(model):
        output = _flatten(model(x))[0]
        (relevance,) = torch.autograd.grad(output, x, torch.ones_like(output))
    return relevance


def _snapshot(model: nn.Module) -> dict:
    """Everything a canonizer could leave behind: parameters (bitwise), attributes, children, hooks."""
    return {
        "state": {key: value.clone() for key, value in model.state_dict().items()},
        "parameters": [id(param) for param in model.parameters()],
        "modules": [(name, id(module)) for name, module in model.named_modules()],
        "attributes": [(name, sorted(vars(module))) for name, module in model.named_modules()],
        "hooks": [
            len(module._forward_hooks) + len(module._forward_pre_hooks) + len(module._backward_hooks)
            for module in model.modules()
        ],
    }


def _assert_same(before: dict, after: dict):
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key
    assert before["parameters"] == after["parameters"]
    assert before["modules"] == after["modules"]
    assert before["attributes"] == after["attributes"]
    assert sum(after["hooks"]) == 0


@pytest.mark.parametrize("name,make,shape", CASES, ids=[case[0] for case in CASES])
def test_canonized_forward_equals_original(name, make, shape):
    model, x = _built(make, shape)
    expected = _flatten(model(x))
    composite = uniform_epsilon(model)
    assert composite.canonizers[1:], "no sequence canonizer found"
    with composite.context(model):
        assert any("forward" in vars(module) for module in model.modules()), "the canonizer did not apply"
        actual = _flatten(model(x.requires_grad_()))
    assert len(actual) == len(expected)
    for want, got in zip(expected, actual):
        assert want.shape == got.shape
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,make,shape", CASES, ids=[case[0] for case in CASES])
def test_model_restored_exactly(name, make, shape):
    model, x = _built(make, shape)
    output = _flatten(model(x))
    before = _snapshot(model)

    _attribute(model, x)
    _assert_same(before, _snapshot(model))

    with pytest.raises(KeyError):
        with uniform_epsilon(model).context(model) as canonized:
            canonized(x)
            raise KeyError("raised while canonized")
    _assert_same(before, _snapshot(model))
    for want, got in zip(output, _flatten(model(x))):
        assert torch.equal(want, got)


def test_relevance_passes_through_the_model_not_around_it():
    """Each case is attributed to the input with a finite, nonzero relevance (the rules are wired in)."""
    torch.manual_seed(0)
    for name, make, shape in CASES:
        model, x = make().eval(), torch.randn(*shape)
        relevance = _attribute(model, x)
        assert relevance.shape == x.shape, name
        assert torch.isfinite(relevance).all() and relevance.abs().sum() > 0, name


def test_no_sequence_modules_no_canonizers():
    assert sequence_canonizers(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))) == []


def test_canonizers_are_fresh_instances():
    model = nn.LSTM(4, 3)
    first, second = sequence_canonizers(model), sequence_canonizers(model)
    assert [type(c) for c in first] == [type(c) for c in second]
    assert all(a is not b for a, b in zip(first, second))


@pytest.mark.parametrize(
    "supported,unsupported,canonizer",
    [
        (nn.LSTM(8, 8), nn.LSTM(8, 6, proj_size=3), RecurrentCanonizer),
        (nn.MultiheadAttention(8, 2), nn.MultiheadAttention(8, 2, add_bias_kv=True), AttentionCanonizer),
        (nn.MultiheadAttention(8, 2), nn.MultiheadAttention(8, 2, add_zero_attn=True), AttentionCanonizer),
    ],
    ids=["lstm-proj-size", "mha-bias-kv", "mha-zero-attn"],
)
def test_unsupported_options_are_refused_before_anything_changes(supported, unsupported, canonizer):
    model = nn.Sequential(supported, unsupported)
    before = _snapshot(model)
    with pytest.raises(NotImplementedError):
        sequence_canonizers(model)
    with pytest.raises(NotImplementedError):
        canonizer().apply(model)
    _assert_same(before, _snapshot(model))


def test_packed_sequence_is_refused_and_model_restored():
    model = nn.LSTM(4, 3)
    before = _snapshot(model)
    packed = pack_padded_sequence(torch.randn(5, 2, 4), torch.tensor([5, 3]))
    with pytest.raises(NotImplementedError, match="PackedSequence"):
        with uniform_epsilon(model).context(model):
            model(packed)
    _assert_same(before, _snapshot(model))


def test_canonizing_twice_is_refused():
    model = nn.GRU(4, 3)
    canonizer = sequence_canonizers(model)[0]
    instances = canonizer.apply(model)
    try:
        with pytest.raises(ValueError, match="already canonized"):
            sequence_canonizers(model)[0].apply(model)
    finally:
        for instance in instances:
            instance.remove()
    assert "forward" not in vars(model) and not hasattr(model, "lrp_cells")


def test_token_relevance():
    relevance = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(token_relevance(relevance), relevance.sum(-1))
    assert torch.equal(token_relevance(relevance.transpose(0, 1), batch_first=False), relevance.sum(-1))
    with pytest.raises(ValueError):
        token_relevance(relevance[0])
