"""Properties of the metrics package: oracles, identities, batching, caching and input checks."""

import json
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

import metrics
from metrics import IROF, AbPC, Complexity, FaithfulnessCorrelation, LeRF, MoRF, Sparseness
from metrics.perturbation._faithfulness_correlation import N_REPEATS


class CountingModel(nn.Module):
    """Wraps a model; counts forward calls and keeps the inputs it saw."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.seen = model, 0, []

    def forward(self, x):
        self.calls += 1
        self.seen.append(x.clone())
        return self.model(x)


@pytest.fixture
def metric_linear():
    """A linear classifier on 1x8x8 images, f(x) = W x, with 10 classes and 16 inputs."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10, bias=False)).eval()
    x = torch.randn(16, 1, 8, 8)
    y = torch.arange(16) % 10
    ideal = model[1].weight[y].view_as(x).detach() * x  # W[target] * x
    return model, x, y, ideal


def random_attribution(x, seed=1):
    return torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- oracles


@pytest.mark.parametrize("cls", [MoRF, LeRF, AbPC])
def test_oracle_ideal_beats_random_beats_negation_on_every_sample(metric_linear, cls):
    model, x, y, ideal = metric_linear
    metric = cls(model, n_steps=8)
    best, rand, worst = (metric(x, y, a) for a in (ideal, random_attribution(x), -ideal))
    sign = 1 if metric.direction == "maximize" else -1
    assert (sign * (best - rand) > 0).all() and (sign * (rand - worst) > 0).all()


def test_lerf_is_minimized_and_morf_abpc_maximized():
    assert (MoRF.direction, LeRF.direction, AbPC.direction) == ("maximize", "minimize", "maximize")
    assert FaithfulnessCorrelation.direction == "maximize" and IROF.direction == "maximize"
    assert Sparseness.direction == "maximize" and Complexity.direction == "minimize"


def test_abpc_equals_morf_minus_lerf(metric_linear):
    model, x, y, _ = metric_linear
    a = random_attribution(x)
    kw = dict(n_steps=8, baseline="mean", patch_size=2)
    expected = MoRF(model, **kw)(x, y, a) - LeRF(model, **kw)(x, y, a)
    torch.testing.assert_close(AbPC(model, **kw)(x, y, a), expected, atol=1e-6, rtol=0)


def test_morf_is_aopc_of_its_curve(metric_linear):
    model, x, y, _ = metric_linear
    a = random_attribution(x)
    metric = MoRF(model, n_steps=4)
    curve = metric.curve(x, y, a)
    assert curve.shape == (16, 4)
    p = torch.softmax(model(x), -1)[torch.arange(16), y].detach()
    torch.testing.assert_close(metric(x, y, a), (p[:, None] - curve).mean(1), atol=1e-6, rtol=0)
    # after the last step every feature is the baseline (zero): p equals the model's p(0)
    p0 = torch.softmax(model(torch.zeros_like(x)), -1)[torch.arange(16), y].detach()
    torch.testing.assert_close(curve[:, -1], p0)


def test_faithfulness_correlation_is_one_for_exact_linear_contributions(metric_linear):
    model, x, y, ideal = metric_linear
    logits = lambda z: z  # noqa: E731 -- the drop of a logit is exactly the removed W[t] * x
    metric = FaithfulnessCorrelation(model, n_runs=20, subset_size=10, prob_fn=logits)
    torch.testing.assert_close(metric(x, y, ideal), torch.ones(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(metric(x, y, -ideal), -torch.ones(16), atol=1e-5, rtol=0)
    assert metric(x, y, random_attribution(x)).abs().max() < 0.99


def test_irof_ranks_ideal_above_negation_and_is_zero_for_a_constant_model(metric_linear):
    model, x, y, ideal = metric_linear
    metric = IROF(model, n_segments=16)
    assert (metric(x, y, ideal) > metric(x, y, -ideal)).all()
    constant = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    nn.init.zeros_(constant[1].weight)
    torch.testing.assert_close(IROF(constant, n_segments=16)(x, y, ideal), torch.zeros(16), atol=1e-6, rtol=0)


def slow_irof(model, x, y, a, segments):
    """IROF by its definition, one image and one segment at a time; removed segments take the data's (all
    images') per-channel mean."""
    scores, mean = [], x.mean((0, 2, 3))[:, None, None]
    for xi, yi, ai, si in zip(x, y, a, segments):
        n = int(si.max()) + 1
        relevance = ai.sum(0)
        order = sorted(range(n), key=lambda s: -relevance[si == s].mean().item())
        baseline = mean.expand_as(xi)
        p = lambda z: torch.softmax(model(z[None]), -1)[0, yi].item()  # noqa: E731
        p0, z, curve = p(xi), xi.clone(), [1.0]
        for s in order:
            z = torch.where(si == s, baseline, z)
            curve.append(p(z) / p0)
        scores.append(1 - sum((u + v) / 2 for u, v in zip(curve, curve[1:])) / n)
    return torch.tensor(scores)


@pytest.mark.parametrize("channels, n_segments", [(3, 10), (1, 6), (3, 4)])
def test_irof_equals_its_definition(channels, n_segments):
    torch.manual_seed(channels + n_segments)
    model = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 256, 5)).eval()
    x = torch.rand(3, channels, 16, 16)
    x[:, :, :8] += 1.0  # structure, so that SLIC finds more than one segment
    y, a = torch.tensor([0, 1, 2]), torch.randn(3, channels, 16, 16)
    metric = IROF(model, n_segments=n_segments, batch_size=7)
    segments = metric.segment(x)
    with torch.no_grad():
        expected = slow_irof(model, x, y, a, segments)
    torch.testing.assert_close(metric(x, y, a), expected, atol=1e-5, rtol=0)
    assert (segments.flatten(1).max(1).values >= 1).all()


def test_irof_accepts_rgb_images():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 256, 5)).eval()
    x, y = torch.rand(3, 3, 16, 16), torch.tensor([0, 1, 2])
    scores = IROF(model, n_segments=10)(x, y, torch.randn_like(x))
    assert scores.shape == (3,) and torch.isfinite(scores).all()


# ---------------------------------------------------------------- model-free metrics


def test_sparseness_and_complexity_extremes():
    x = torch.zeros(3, 2, 4, 4)
    a = torch.zeros_like(x)
    a[0, :, 1, 2] = 5.0  # one position holds everything (over both channels)
    a[1] = 0.3  # uniform
    a[2] = torch.rand(2, 4, 4)  # in between
    n = 16
    gini, entropy = Sparseness()(x, None, a), Complexity()(x, None, a)
    torch.testing.assert_close(gini[:2], torch.tensor([(n - 1) / n, 0.0]))
    torch.testing.assert_close(entropy[:2], torch.tensor([0.0, math.log(n)]))
    assert 0 < gini[2] < (n - 1) / n and 0 < entropy[2] < math.log(n)
    # both are invariant to scaling
    torch.testing.assert_close(Sparseness()(x, None, 7 * a), gini)
    torch.testing.assert_close(Complexity()(x, None, 7 * a), entropy)


def test_sparseness_and_complexity_agree_with_quantus():
    import quantus

    x = torch.rand(4, 1, 8, 8)
    a = torch.rand(4, 1, 8, 8)
    y = torch.zeros(4, dtype=torch.long)
    ours = [Sparseness()(x, y, a), Complexity()(x, y, a)]
    theirs = [metrics.from_quantus(q(disable_warnings=True))(x, y, a) for q in (quantus.Sparseness, quantus.Complexity)]
    for o, t in zip(ours, theirs):
        torch.testing.assert_close(o, t, atol=1e-4, rtol=0)


# ---------------------------------------------------------------- sequences


@pytest.fixture
def metric_text():
    """A bag-of-embeddings classifier whose pad token (id 0) embeds to zero."""
    torch.manual_seed(0)
    embedding = nn.Embedding(20, 6, padding_idx=0)
    head = nn.Sequential(nn.Flatten(), nn.Linear(12 * 6, 3)).eval()
    ids = torch.randint(1, 20, (5, 12))
    y = torch.tensor([0, 1, 2, 0, 1])
    return embedding, head, ids, y


def test_token_ids_take_the_pad_id_most_relevant_first(metric_text):
    embedding, head, ids, y = metric_text
    model = CountingModel(nn.Sequential(embedding, head).eval())
    relevance = torch.randn(5, 12)
    MoRF(model, n_steps=12, baseline=0, batch_size=1000)(ids, y, relevance)
    perturbed = model.seen[0][:-5].view(12, 5, 12)  # step-major rows, then the unperturbed ones
    order = relevance.argsort(dim=1, descending=True)
    for k in range(1, 13):
        expected = ids.clone()
        expected.scatter_(1, order[:, :k], 0)
        assert torch.equal(perturbed[k - 1], expected)
    assert torch.equal(model.seen[0][-5:], ids)


def test_embeddings_zero_baseline_equals_token_ids_pad_baseline(metric_text):
    embedding, head, ids, y = metric_text
    relevance = torch.randn(5, 12, 6)
    with torch.no_grad():
        embedded = embedding(ids)
    on_ids = MoRF(nn.Sequential(embedding, head).eval(), n_steps=6, baseline=0)(ids, y, relevance.sum(-1))
    on_embeddings = MoRF(head, n_steps=6, baseline="zero")(embedded, y, relevance)
    torch.testing.assert_close(on_ids, on_embeddings, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- perturbation details


def test_patches_are_perturbed_whole(metric_linear):
    model, x, y, _ = metric_linear
    counting = CountingModel(model)
    MoRF(counting, n_steps=5, patch_size=(2, 4), baseline=torch.tensor(99.0), batch_size=1000)(
        x, y, random_attribution(x)
    )
    changed = (counting.seen[0] == 99.0).view(-1, 4, 2, 2, 4)  # (rows, patch row, 2, patch col, 4)
    assert (changed == changed[:, :, :1, :, :1]).all()
    counts = changed[:, :, 0, :, 0].flatten(1).sum(1).view(6, 16)[:5]
    assert (counts == torch.tensor([1, 3, 4, 6, 8])[:, None]).all()  # floor(k * 8 / 5) patches


@pytest.mark.parametrize("baseline", ["mean", "blur", "min"])
def test_constant_images_are_unchanged_by_data_baselines(metric_linear, baseline):
    model, _, y, _ = metric_linear
    x = torch.full((16, 1, 8, 8), 0.7)
    scores = MoRF(model, n_steps=4, baseline=baseline)(x, y, random_attribution(x))
    torch.testing.assert_close(scores, torch.zeros(16), atol=1e-6, rtol=0)


def test_scores_do_not_depend_on_the_batch(metric_linear):
    model, x, y, _ = metric_linear
    a = random_attribution(x)
    metric = AbPC(model, n_steps=8, batch_size=7)
    together = metric(x, y, a)
    alone = torch.cat([metric(x[i : i + 1], y[i : i + 1], a[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together[:3], alone, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- forward passes


@pytest.mark.parametrize("batch_size", [1000, 16, 7, 3])
def test_morf_forward_call_count(metric_linear, batch_size):
    model, x, y, _ = metric_linear
    counting = CountingModel(model)
    steps, batch = 5, len(x)
    MoRF(counting, n_steps=steps, batch_size=batch_size)(x, y, random_attribution(x))
    if batch_size >= batch:
        assert counting.calls <= steps + 1
    assert counting.calls == math.ceil((steps + 1) * batch / batch_size)
    assert all(len(seen) <= batch_size for seen in counting.seen)


def test_abpc_faithfulness_and_irof_batch_their_forward_passes(metric_linear):
    model, x, y, _ = metric_linear
    a, counting = random_attribution(x), CountingModel(model)
    AbPC(counting, n_steps=5, batch_size=10)(x, y, a)
    assert counting.calls == math.ceil(2 * 4 * 16 / 10)
    counting.calls = 0
    FaithfulnessCorrelation(counting, n_runs=6, subset_size=5, batch_size=10)(x, y, a)
    assert counting.calls == math.ceil((N_REPEATS * 6 + 1) * 16 / 10)  # N_REPEATS draws of 6 subsets, and p(x)
    counting.calls = 0
    irof = IROF(counting, n_segments=8, batch_size=50)
    segments = irof.segment(x)
    irof(x, y, a, segments=segments)
    rows = int((segments.flatten(1).max(1).values + 1).sum()) + 16
    assert counting.calls == math.ceil(rows / 50)


# ---------------------------------------------------------------- caching and determinism


@pytest.mark.parametrize(
    "make",
    [
        lambda m: MoRF(m, n_steps=4),
        lambda m: LeRF(m, n_steps=4, baseline="mean"),
        lambda m: AbPC(m, n_steps=4),
        lambda m: FaithfulnessCorrelation(m, n_runs=8, subset_size=6),
        lambda m: IROF(m, n_segments=8),
    ],
)
def test_cached_reference_gives_the_same_scores_with_fewer_rows(metric_linear, make):
    model, x, y, _ = metric_linear
    a, counting = random_attribution(x), CountingModel(model)
    metric = make(counting)
    uncached = metric(x, y, a)
    reference = metric.reference(x, y)
    counting.seen.clear()
    extra = {"segments": metric.segment(x)} if isinstance(metric, IROF) else {}
    cached = metric(x, y, a, reference=reference, **extra)
    torch.testing.assert_close(cached, uncached, atol=1e-6, rtol=0)
    rows = sum(len(s) for s in counting.seen)
    if not isinstance(metric, AbPC):
        assert reference.shape == (16,) and rows % 16 == 0 and rows > 0
        counting.seen.clear()
        metric(x, y, a)
        assert sum(len(s) for s in counting.seen) == rows + 16


def test_determinism_and_faithfulness_correlation_seeds(metric_linear):
    model, x, y, _ = metric_linear
    a = random_attribution(x)
    for cls in (MoRF, LeRF, AbPC):
        assert torch.equal(cls(model, n_steps=4)(x, y, a), cls(model, n_steps=4)(x, y, a))
    state = torch.random.get_rng_state()
    same = [FaithfulnessCorrelation(model, n_runs=10, subset_size=6, seed=3)(x, y, a) for _ in range(2)]
    assert torch.equal(same[0], same[1])
    assert torch.equal(state, torch.random.get_rng_state())  # the global torch RNG is untouched
    fc = [FaithfulnessCorrelation(model, n_runs=10, subset_size=6, seed=s) for s in (3, 4)]
    assert not torch.equal(fc[0].subsets(16, 64), fc[1].subsets(16, 64))
    assert not torch.equal(fc[1](x, y, a), same[0])
    assert (fc[0].subsets(16, 64).sum(-1) == 6).all()


# ---------------------------------------------------------------- errors, before any forward pass


@pytest.mark.parametrize(
    "case, message",
    [
        ("shape", "shape of the inputs"),
        ("steps", "n_steps=65"),
        ("nan", "NaN"),
        ("inf", "NaN or Inf"),
        ("targets", "one class index per sample"),
        ("float_targets", "integer class"),
        ("patch", "patch_size"),
    ],
)
@pytest.mark.parametrize("cls", [MoRF, LeRF, AbPC])
def test_bad_inputs_raise_before_any_forward_pass(metric_linear, cls, case, message):
    model, x, y, _ = metric_linear
    counting = CountingModel(model)
    a = random_attribution(x)
    kw = dict(n_steps=65 if case == "steps" else 4, patch_size=9 if case == "patch" else 1)
    if case == "shape":
        a = a[:, 0]
    if case == "nan":
        a[3, 0, 1, 1] = float("nan")
    if case == "inf":
        a[3, 0, 1, 1] = float("inf")
    if case == "targets":
        y = y[:-1]
    if case == "float_targets":
        y = y.float()
    with pytest.raises(ValueError, match=message):
        cls(counting, **kw)(x, y, a)
    assert counting.calls == 0


def test_other_metrics_check_their_inputs(metric_linear):
    model, x, y, _ = metric_linear
    nan = random_attribution(x)
    nan[0, 0, 0, 0] = float("nan")
    for metric in (FaithfulnessCorrelation(model, n_runs=4, subset_size=4), IROF(model), Sparseness(), Complexity()):
        with pytest.raises(ValueError, match="NaN"):
            metric(x, y, nan)
        with pytest.raises(ValueError, match="shape"):
            metric(x, y, nan[:, 0])
    with pytest.raises(ValueError, match="subset_size"):
        FaithfulnessCorrelation(model, n_runs=4, subset_size=64)(x, y, random_attribution(x))
    with pytest.raises(ValueError, match="baseline"):
        MoRF(model, baseline="black")
    with pytest.raises(ValueError, match="needs the model"):
        MoRF(None)
    with pytest.raises(ValueError, match="int baseline"):
        MoRF(model, n_steps=2, baseline="mean")(
            torch.ones(2, 5, dtype=torch.long), torch.zeros(2, dtype=torch.long), torch.randn(2, 5)
        )


# ---------------------------------------------------------------- registry and API


def test_registry_builds_every_metric_with_json_settings(metric_linear):
    model = metric_linear[0]
    assert set(metrics.METRICS) == {
        "morf",
        "lerf",
        "abpc",
        "faithfulness_correlation",
        "irof",
        "sparseness",
        "complexity",
        "relevance_mass",
        "relevance_rank",
        "pointing_game",
    }
    for name, cls in metrics.METRICS.items():
        metric = metrics.get_metric(name, model)
        assert type(metric) is cls and isinstance(metric, metrics.Metric)
        json.dumps(metric.settings())
        assert repr(metric).startswith(cls.__name__ + "(")
    settings = metrics.get_metric("morf", model, n_steps=3, baseline=torch.zeros(1, 8, 8)).settings()
    assert settings["n_steps"] == 3 and settings["prob_fn"] == "softmax" and "shape" in settings["baseline"]
    with pytest.raises(ValueError, match="abpc.*morf"):
        metrics.get_metric("aopc", model)


@pytest.mark.slow  # a subprocess of the command line
def test_metrics_does_not_import_the_other_packages():
    code = "import sys, metrics; print([m for m in ('explainers', 'tuner', 'studies', 'quantus') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_faithfulness_correlation_is_batch_independent_and_fits_small_inputs():
    """A sample scores the same alone and inside a batch (the tuner's batch size must not change scores),
    and the default subset size fits inputs with few features (8x8 digits: a quarter of 64)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    attributions = torch.randn(4, 1, 8, 8)
    metric = FaithfulnessCorrelation(model, n_runs=20)
    batch = metric.evaluate(x, y, attributions)
    alone = metric.evaluate(x[2:3], y[2:3], attributions[2:3])
    assert torch.allclose(alone, batch[2:3], atol=1e-6)
    assert metric.subsets(4, 64).sum(-1).unique().tolist() == [16]
