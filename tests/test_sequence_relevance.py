"""Properties of the sequence LRP rules: conservation, the LRP-0 identity, and a toy task with a known answer."""

import gc

import pytest
import torch
from torch import nn
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import LayerMapComposite, layer_map_base
from zennit.rules import Epsilon, Norm
from zennit.types import Convolution

from explainers._conservation import token_relevance
from explainers.canonizers import StepLinear, StepSum, sequence_canonizers
from explainers.rules import PerCall, sequence_layer_map

LENGTH, VOCAB, MARKER, WIDTH = 10, 12, 1, 16


def uniform_epsilon(model: nn.Module, epsilon: float, *, sequence_rules: bool = True) -> LayerMapComposite:
    """The composite LRPUniformEpsilon builds; ``sequence_rules=False`` switches the sequence canonizers off."""
    return LayerMapComposite(
        layer_map=sequence_layer_map(epsilon, epsilon)
        + layer_map_base(epsilon)
        + [(Convolution, Epsilon(epsilon)), (nn.Linear, Epsilon(epsilon))],
        canonizers=[SequentialMergeBatchNorm()] + (sequence_canonizers(model) if sequence_rules else []),
    )


def attribute_tokens(model: "TokenClassifier", ids: torch.Tensor, target: int, composite) -> torch.Tensor:
    """Relevance per token (B, L): Gradient attribution of the body at the embedding output."""
    embedded = model.embedding(ids if model.body.batch_first else ids.T).detach()
    with Gradient(model.body, composite) as attributor:
        _, relevance = attributor(embedded, torch.eye(2)[[target] * len(ids)])
    return token_relevance(relevance, batch_first=model.body.batch_first)


class TokenClassifier(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.embedding, self.body = nn.Embedding(VOCAB, WIDTH), body

    def forward(self, ids):
        if not self.body.batch_first:
            ids = ids.T
        return self.body(self.embedding(ids))


class TransformerBody(nn.Module):
    """Transformer encoder classifier; mean-pooled through AvgPool1d (a sum rule) or the first token."""

    def __init__(self, layers: int = 2, pool: str = "mean"):
        super().__init__()
        self.batch_first, self.pool = True, pool
        layer = nn.TransformerEncoderLayer(WIDTH, 2, 2 * WIDTH, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.mean = nn.AvgPool1d(LENGTH)
        self.head = nn.Linear(WIDTH, 2)

    def forward(self, x):
        encoded = self.encoder(x)
        pooled = self.mean(encoded.transpose(1, 2)).squeeze(-1) if self.pool == "mean" else encoded[:, 0]
        return self.head(pooled)


class DecoderBody(nn.Module):
    """Transformer decoder over its own input as memory (self-attention, cross-attention, feed-forward)."""

    def __init__(self):
        super().__init__()
        self.batch_first = True
        layer = nn.TransformerDecoderLayer(WIDTH, 2, 2 * WIDTH, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, 1, norm=nn.LayerNorm(WIDTH))
        self.head = nn.Linear(WIDTH, 2)

    def forward(self, x):
        return self.head(self.decoder(x, x)[:, -1])


class RecurrentBody(nn.Module):
    """Recurrent classifier on the last layer's final hidden state(s)."""

    def __init__(
        self, kind: type = nn.LSTM, layers: int = 1, bidirectional: bool = False, batch_first: bool = True, **kwargs
    ):
        super().__init__()
        self.batch_first = batch_first
        self.recurrent = kind(
            WIDTH, WIDTH, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, **kwargs
        )
        self.head = nn.Linear(WIDTH * (1 + bidirectional), 2)

    def forward(self, x):
        _, hidden = self.recurrent(x)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        directions = 1 + self.recurrent.bidirectional
        return self.head(hidden[-directions:].transpose(0, 1).reshape(len(hidden[0]), -1))


BODIES = {
    "transformer-mean-2layer": lambda: TransformerBody(2, "mean"),
    "transformer-first-token-1layer": lambda: TransformerBody(1, "first"),
    "transformer-decoder": DecoderBody,
    "lstm": lambda: RecurrentBody(nn.LSTM),
    "lstm-2layer-bi-time-major": lambda: RecurrentBody(nn.LSTM, 2, True, batch_first=False),
    "gru": lambda: RecurrentBody(nn.GRU),
    "gru-2layer-bi": lambda: RecurrentBody(nn.GRU, 2, True),
    "rnn-tanh-bi": lambda: RecurrentBody(nn.RNN, 1, True),
}


def _zero_biases(model: nn.Module) -> nn.Module:
    for name, param in model.named_parameters():
        if "bias" in name.rsplit(".", 1)[-1]:
            param.data.zero_()
    return model


@pytest.mark.parametrize("name", BODIES)
def test_conservation(name):
    """Biases zeroed, epsilon tiny: each sample's relevance at the embedding output sums to the seed, 1.

    Switching the sequence rules off (no canonizers) breaks the sum, so the check does catch a missing rule.
    """
    torch.manual_seed(0)
    model = _zero_biases(TokenClassifier(BODIES[name]()).eval())
    ids = torch.randint(0, VOCAB, (6, LENGTH))
    for target in (0, 1):
        totals = attribute_tokens(model, ids, target, uniform_epsilon(model.body, 1e-9)).sum(1)
        torch.testing.assert_close(totals, torch.ones(len(ids)), atol=1e-3, rtol=0)
        switched_off = attribute_tokens(model, ids, target, uniform_epsilon(model.body, 1e-9, sequence_rules=False))
        assert (switched_off.sum(1) - 1).abs().max() > 1e-2


def _relu_rnn() -> nn.Module:
    torch.manual_seed(0)
    return _zero_biases(RecurrentBody(nn.RNN, 2, True, nonlinearity="relu").eval())


def _gradient_times_input(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    x = x.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(model(x)[:, target].sum(), x)
    return gradient * x


def test_lrp0_equals_gradient_times_input_for_a_relu_rnn():
    """A bias-free ReLU RNN is piecewise linear and homogeneous: LRP-0 equals gradient x input :cite:p:`ancona2018`
    (divided by the output, as the relevance seed is 1 rather than the output).

    This checks the per-time-step rules exactly (every step's own input and relevance are used).
    """
    model, x = _relu_rnn(), torch.randn(5, LENGTH, WIDTH)
    with Gradient(model, uniform_epsilon(model, 1e-12)) as attributor:
        output, relevance = attributor(x, torch.eye(2)[[1] * len(x)])
    expected = _gradient_times_input(model, x, 1) / output[:, 1, None, None]
    torch.testing.assert_close(relevance, expected, atol=1e-4, rtol=1e-3)


def test_lrp0_identity_fails_with_one_rule_per_module_instead_of_per_call():
    """The same identity with zennit's plain rules on the per-step modules (one stored input per module) fails."""
    model, x, epsilon = _relu_rnn(), torch.randn(5, LENGTH, WIDTH), 1e-12
    composite = LayerMapComposite(
        layer_map=[(StepLinear, Epsilon(epsilon)), (StepSum, Norm(epsilon))]
        + sequence_layer_map(epsilon, epsilon)
        + layer_map_base(epsilon)
        + [(nn.Linear, Epsilon(epsilon))],
        canonizers=sequence_canonizers(model),
    )
    with Gradient(model, composite) as attributor:
        output, relevance = attributor(x, torch.eye(2)[[1] * len(x)])
    expected = _gradient_times_input(model, x, 1) / output[:, 1, None, None]
    assert not torch.allclose(relevance, expected, atol=1e-2, rtol=1e-2)


def _marker_data(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens; label 1 iff the marker token occurs (exactly once, at a random position)."""
    ids = torch.randint(MARKER + 1, VOCAB, (count, LENGTH), generator=generator)
    labels = torch.randint(0, 2, (count,), generator=generator)
    positions = torch.randint(0, LENGTH, (count,), generator=generator)
    ids[labels == 1, positions[labels == 1]] = MARKER
    return ids, labels


def _train(body: nn.Module) -> TokenClassifier:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = TokenClassifier(body)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(400):
        ids, labels = _marker_data(64, generator)
        loss = nn.functional.cross_entropy(model(ids), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module", params=["transformer", "lstm"])
def trained(request):
    body = TransformerBody(1, "mean") if request.param == "transformer" else RecurrentBody(nn.LSTM)
    return _train(body)


def test_marker_token_gets_the_most_relevance(trained):
    ids, labels = _marker_data(400, torch.Generator().manual_seed(1))
    with torch.no_grad():
        accuracy = (trained(ids).argmax(1) == labels).float().mean()
    assert accuracy > 0.97, "the toy model did not learn the task"

    positives = ids[labels == 1]
    relevance = attribute_tokens(trained, positives, 1, uniform_epsilon(trained.body, 1e-6))
    assert _marker_on_top(positives, relevance) >= 0.9

    without_rules = attribute_tokens(trained, positives, 1, uniform_epsilon(trained.body, 1e-6, sequence_rules=False))
    assert _marker_on_top(positives, without_rules) < 0.9


def _marker_on_top(ids: torch.Tensor, relevance: torch.Tensor) -> float:
    """The share of samples whose most relevant token is the marker."""
    return (ids.gather(1, relevance.argmax(1, keepdim=True)) == MARKER).float().mean().item()


def test_per_call_rules_neither_pile_up_nor_forget():
    """Per-step rule copies live as long as their graph: bounded over many forward passes, and a retained graph
    gives the same relevance on a second backward pass."""
    model = RecurrentBody(nn.GRU, 2, True).eval()
    composite = uniform_epsilon(model, 1e-6)
    x = torch.randn(3, LENGTH, WIDTH, requires_grad=True)
    with composite.context(model):
        per_call = [hook for hook in composite.hook_refs if isinstance(hook, PerCall)]
        live = []
        for _ in range(3):
            torch.autograd.grad(model(x)[:, 0].sum(), x)
            gc.collect()
            live.append(sum(len(hook.calls) for hook in per_call))
        output = model(x)[:, 0].sum()
        (first,) = torch.autograd.grad(output, x, retain_graph=True)
        (second,) = torch.autograd.grad(output, x)
    assert live[0] == live[-1]
    assert torch.equal(first, second)


def test_tune_runs_end_to_end_on_token_models(trained):
    """tune(LRPUniformEpsilon, ...) on a text classifier: relevance at the embedding output, one score
    per token, tokens replaced by a pad id in the metric."""
    from helpers import run_tune

    from explainers import LRPUniformEpsilon

    ids, labels = _marker_data(64, torch.Generator().manual_seed(3))
    result = run_tune(
        LRPUniformEpsilon,
        trained,
        (ids, labels),
        n_trials=5,
        n_samples=8,
        batch_size=4,
        explainer_kwargs={"layer": trained.embedding},
        metric_kwargs={"baseline": 0, "n_steps": 5},
        show_progress_bar=False,
    )
    values = [t.value for t in result.study.trials if t.state.name == "COMPLETE"]
    assert len(values) == 5 and len(set(values)) > 1
    assert result.best_value == max(values) and result.default_value == result.study.trials[0].value
    assert result.scores(result.best_explainer).mean().item() == pytest.approx(result.best_value, abs=1e-6)
