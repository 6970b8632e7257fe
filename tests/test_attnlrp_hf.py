"""AttnLRP and CP-LRP on Hugging Face transformers built from tiny random configs (2 layers, hidden 32): with biases
zeroed, in float64, the relevance of the input tokens (or pixels) plus what is absorbed and reported (the softmax's
bias terms, position and token-type embeddings, the class token) equals the explained logit; an unsupported family
is refused before any work."""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

from explainers.attnlrp import LRPAttn, UnsupportedFamilyError, image_relevance, layer_groups, text_relevance

VOCAB, LENGTH, BATCH = 40, 9, 3
#: a common shape: 2 layers, hidden 32, 4 heads; weights drawn wider than Hugging Face's 0.02, so activations and
#: relevance are far from 0
SHAPE = {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 32, "intermediate_size": 64}
WIDE = {"initializer_range": 0.2}

#: family -> (its configuration, the model class)
TEXT_FAMILIES = {
    "bert": (transformers.BertConfig(vocab_size=VOCAB, num_labels=3, **SHAPE, **WIDE), "ForSequenceClassification"),
    "distilbert": (
        transformers.DistilBertConfig(
            vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64, num_labels=3, **WIDE
        ),
        "ForSequenceClassification",
    ),
    "roberta": (
        transformers.RobertaConfig(vocab_size=VOCAB, num_labels=3, max_position_embeddings=40, **SHAPE, **WIDE),
        "ForSequenceClassification",
    ),
    "gpt2": (
        transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=32, **WIDE),
        "LMHeadModel",
    ),
    "llama": (transformers.LlamaConfig(vocab_size=VOCAB, num_key_value_heads=2, **SHAPE, **WIDE), "ForCausalLM"),
    "qwen2": (transformers.Qwen2Config(vocab_size=VOCAB, num_key_value_heads=2, **SHAPE, **WIDE), "ForCausalLM"),
    "mistral": (transformers.MistralConfig(vocab_size=VOCAB, num_key_value_heads=2, **SHAPE, **WIDE), "ForCausalLM"),
    "gemma": (
        transformers.GemmaConfig(vocab_size=VOCAB, num_key_value_heads=1, head_dim=8, **SHAPE, **WIDE),
        "ForCausalLM",
    ),
}


def _prefix(config: transformers.PretrainedConfig) -> str:
    return type(config).__name__.removesuffix("Config")


def _zero_biases(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(getattr(module, "bias", None), torch.Tensor):
            module.bias.data.zero_()
    return model


def _text_model(family: str) -> nn.Module:
    config, suffix = TEXT_FAMILIES[family]
    torch.manual_seed(0)
    model = getattr(transformers, _prefix(config) + suffix)(config)
    return _zero_biases(model).double().eval()


def _check_conservation(relevance: torch.Tensor, absorbed: dict[str, torch.Tensor], logits: torch.Tensor) -> None:
    total = relevance.flatten(1).sum(1) + sum(absorbed.values(), torch.zeros_like(logits))
    assert torch.allclose(total, logits, rtol=1e-4, atol=1e-8), (total, logits, absorbed)
    # not a vacuous balance: the inputs hold much of the logit, spread over many of them, with both signs
    assert float(relevance.flatten(1).abs().sum(1).min()) > 0.1 * float(logits.abs().min())
    assert float((relevance.abs() > 1e-6 * relevance.abs().max()).double().mean()) > 0.5


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_text_families_conserve_relevance(family: str, attention: str) -> None:
    model = _text_model(family)
    input_ids = torch.randint(3, VOCAB, (BATCH, LENGTH), generator=torch.Generator().manual_seed(1))  # no pad id
    # a class of a classifier, a token of a language model (not one of the special ids 0..2, which some tie to zero)
    targets = (
        torch.tensor([0, 1, 2]) if TEXT_FAMILIES[family][1] == "ForSequenceClassification" else torch.tensor([5, 7, 9])
    )
    relevance, absorbed, logits = text_relevance(
        model, input_ids, targets, torch.ones_like(input_ids), epsilon=1e-10, attention=attention
    )
    assert relevance.shape == (BATCH, LENGTH)
    assert ("softmax bias" in absorbed) == (attention == "attnlrp")
    with torch.no_grad():  # the explained logit is the model's own
        output = model(input_ids=input_ids).logits
    expected = (output[:, -1] if output.dim() == 3 else output).gather(1, targets[:, None]).squeeze(1)
    torch.testing.assert_close(logits, expected)
    _check_conservation(relevance, absorbed, logits)
    assert all(parameter.requires_grad for parameter in model.parameters())  # handed back as it came


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
def test_vit_conserves_relevance_per_pixel(attention: str) -> None:
    config = transformers.ViTConfig(image_size=16, patch_size=4, num_labels=3, **SHAPE, **WIDE)
    torch.manual_seed(0)
    model = _zero_biases(transformers.ViTForImageClassification(config)).double().eval()
    pixels = torch.randn(BATCH, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    relevance, absorbed, logits = image_relevance(model, pixels, torch.tensor([2, 0, 1]), 1e-10, attention)
    assert relevance.shape == pixels.shape
    assert {"vit.embeddings.cls_token", "vit.embeddings.position_embeddings"} <= set(absorbed)
    _check_conservation(relevance, absorbed, logits)
    assert isinstance(model.vit.embeddings.cls_token, nn.Parameter)  # the parameters are back


def test_a_family_the_rules_do_not_cover_is_refused_in_one_line() -> None:
    config = transformers.OPTConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64, word_embed_proj_dim=32
    )
    model = transformers.OPTForCausalLM(config)
    with pytest.raises(UnsupportedFamilyError, match="'opt'.*supported: bert") as error:
        text_relevance(model, torch.zeros(1, 4, dtype=torch.long), torch.tensor([0]))
    assert "\n" not in str(error.value)


def test_layer_groups_split_attention_and_mlp_by_depth() -> None:
    config = transformers.LlamaConfig(vocab_size=VOCAB, num_key_value_heads=2, **{**SHAPE, "num_hidden_layers": 7})
    groups = layer_groups(transformers.LlamaForCausalLM(config))
    # 7 blocks: 2 first, 3 middle, 2 last; 4 attention projections and 3 MLP layers per block
    assert {name: len(layers) for name, layers in groups.items()} == {
        "attention_first": 8,
        "mlp_first": 6,
        "attention_middle": 12,
        "mlp_middle": 9,
        "attention_last": 8,
        "mlp_last": 6,
    }
    assert set(layer_groups(_text_model("gpt2"))) == {"attention_first", "mlp_first", "attention_last", "mlp_last"}


def test_lrp_attn_is_a_value_with_a_search_space() -> None:
    model = _text_model("llama")
    explainer = LRPAttn(model)
    tunables = explainer.tunables()
    assert list(tunables) == [
        "epsilon",
        "attention",
        "gamma_attention_first",
        "gamma_mlp_first",
        "gamma_attention_last",
        "gamma_mlp_last",
    ]
    assert tunables["attention"].choices == ("attnlrp", "cp")
    assert tunables["gamma_mlp_last"].bounds == (1e-6, 1.0) and tunables["gamma_mlp_last"].log
    tuned = explainer.set_kwargs(epsilon=0.01, gamma_mlp_last=0.25, attention="cp")
    assert tuned.settings() == {"epsilon": 0.01, "attention": "cp", "gamma": {"mlp_last": 0.25}, "seed": "sign"}
    assert explainer.settings() == {"epsilon": 1e-6, "attention": "attnlrp", "gamma": {}, "seed": "sign"}  # unchanged
    assert tuned.copy().settings() == tuned.settings() and tuned.copy() is not tuned
    with pytest.raises(TypeError, match="valid parameters are: epsilon, attention, gamma, seed, gamma_attention_first"):
        explainer.set_kwargs(alpha=1.0)
    with pytest.raises(ValueError, match="no layer group mlp_middle"):
        explainer.set_kwargs(gamma_mlp_middle=0.1)


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama"])
def test_gamma_on_a_layer_group_changes_the_relevance_and_conserves(family: str) -> None:
    model = _text_model(family)
    input_ids = torch.randint(3, VOCAB, (BATCH, LENGTH), generator=torch.Generator().manual_seed(3))
    targets = torch.tensor([0, 1, 2]) if family == "bert" else torch.tensor([5, 7, 9])
    plain = LRPAttn(model, epsilon=1e-10)
    gamma = plain.set_kwargs(gamma_attention_first=0.5, gamma_mlp_last=0.5)
    relevance = gamma.attribute(input_ids, targets)
    assert relevance.shape == (BATCH, LENGTH)
    with torch.no_grad():
        output = model(input_ids=input_ids).logits
    logits = (output[:, -1] if output.dim() == 3 else output).gather(1, targets[:, None]).squeeze(1)
    _check_conservation(relevance, gamma.last_absorbed, logits.sign())  # the sign seed: relevance sums to ±1
    reference = plain.attribute(input_ids, targets)
    assert float((relevance - reference).abs().max()) > 1e-3 * float(reference.abs().max())  # gamma did act


def test_the_seed_is_what_relevance_sums_to() -> None:
    """As for the LRP variants: ±1 (sign, the default), the logit, or 1 (one_hot); the same map scaled per sample."""
    model = _text_model("llama")
    input_ids = torch.randint(3, VOCAB, (BATCH, LENGTH), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        output = model(input_ids=input_ids).logits[:, -1]  # the next token's
    targets = torch.stack([output[0].argmax(), output[1].argmin(), output[2].argmax()])
    logits = output.gather(1, targets[:, None]).squeeze(1)
    assert (logits < 0).any() and (logits > 0).any()  # both signs, so sign and one_hot differ
    totals = {}
    for seed in ("sign", "logit", "one_hot"):
        explainer = LRPAttn(model, seed=seed)
        relevance = explainer.attribute(input_ids, targets)
        totals[seed] = relevance.sum(1) + sum(explainer.last_absorbed.values(), torch.zeros_like(logits))
    assert torch.allclose(totals["sign"], logits.sign(), rtol=1e-4)
    assert torch.allclose(totals["logit"], logits, rtol=1e-4)
    assert torch.allclose(totals["one_hot"], torch.ones_like(logits), rtol=1e-4)
    with pytest.raises(ValueError, match="seed must be one of 'sign', 'logit', 'one_hot'"):
        LRPAttn(model, seed="unit")
