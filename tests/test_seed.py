"""The relevance seed: LRP-0 is gradient×input for every sample, whatever the sign of its target logit."""

import pytest
import torch
from torch import nn

from explainers import LRPUniformEpsilon
from explainers._conservation import relevance_sums


def relu_net() -> nn.Module:
    torch.manual_seed(0)
    return (
        nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * 6 * 6, 16),
            nn.ReLU(),
            nn.Linear(16, 5),
        )
        .double()
        .eval()
    )


def batch(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs and, per sample, the class with the most negative logit (so every target logit is negative) for
    half the samples and the argmax for the other half."""
    torch.manual_seed(1)
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        logits = model(x)
    targets = torch.where(torch.arange(8) % 2 == 0, logits.argmin(1), logits.argmax(1))
    return x, targets, logits.gather(1, targets[:, None]).squeeze(1)


def gradient_times_input(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(x).gather(1, targets[:, None]).sum(), x)
    return gradient * x


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


@pytest.mark.parametrize("seed", ["sign", "logit"])
def test_lrp0_points_like_gradient_times_input_for_negative_logits(seed):
    model = relu_net()
    x, targets, logit = batch(model)
    assert bool((logit < 0).sum() >= 4), "the fixture must hold negative target logits"
    relevance = LRPUniformEpsilon(model, epsilon=1e-12, stabilizer=1e-12, seed=seed).attribute(x, targets)
    similarity = cosine(relevance, gradient_times_input(model, x, targets))
    assert bool((similarity > 0.999).all()), similarity.tolist()


def test_the_default_never_inverts_a_map():
    model = relu_net()
    x, targets, _ = batch(model)
    relevance = LRPUniformEpsilon(model, epsilon=1e-12, stabilizer=1e-12).attribute(x, targets)
    assert bool((cosine(relevance, gradient_times_input(model, x, targets)) > 0.999).all())


def test_one_hot_inverts_the_map_of_a_negative_logit():
    """The check above would catch the old seed: one-hot relevance is gradient×input / logit."""
    model = relu_net()
    x, targets, logit = batch(model)
    relevance = LRPUniformEpsilon(model, epsilon=1e-12, stabilizer=1e-12, seed="one_hot").attribute(x, targets)
    similarity = cosine(relevance, gradient_times_input(model, x, targets))
    assert torch.equal(similarity < -0.999, logit < 0), similarity.tolist()


def test_what_relevance_sums_to_with_zero_biases():
    """1 with the one-hot seed, the logit with the logit seed, its sign with the sign seed (zero biases)."""
    model = relu_net()
    for module in model.modules():
        if getattr(module, "bias", None) is not None:
            module.bias.data.zero_()
    x, targets, logit = batch(model)
    expected = {"one_hot": torch.ones_like(logit), "logit": logit, "sign": torch.sign(logit)}
    for seed, total in expected.items():
        explainer = LRPUniformEpsilon(model, epsilon=1e-12, stabilizer=1e-12, seed=seed)
        torch.testing.assert_close(relevance_sums(explainer.attribute(x, targets)), total, atol=1e-8, rtol=0)


def test_seed_is_a_checked_saved_option(tmp_path):
    from explainers import load_explainer, save_config

    model = relu_net()
    with pytest.raises(ValueError, match="seed must be one of"):
        LRPUniformEpsilon(model, seed="onehot")
    explainer = LRPUniformEpsilon(model, seed="logit")
    assert explainer.set_kwargs(epsilon=0.1).seed == "logit"
    assert load_explainer(save_config(explainer, tmp_path / "c.json"), model).seed == "logit"
