"""AttnLRP and CP-LRP on torchvision's ViT, Swin and MaxViT through the same mechanism as on Hugging Face models:
ViT's ``nn.MultiheadAttention`` computed as its parts, its class token and position embedding reported per sample,
the relative position biases and shifted-window masks added to Swin's and MaxViT's attention scores reported. With
biases zeroed, in float64, the pixels' relevance plus what is absorbed equals the explained logit; a tuning study
searches LRPAttn on them beside the zennit variants (which hold the attention weights constant, as CP-LRP)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import MaxVit, SwinTransformer, VisionTransformer
from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformerBlockV2

from explainers.attnlrp import LRPAttn, UnsupportedFamilyError, image_relevance, layer_groups
from explainers.attnlrp._mode import AttnLRPMode
from tuner import Budget, Report, tune


def _vit(zero_biases: bool = True) -> VisionTransformer:
    torch.manual_seed(0)
    model = VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64, num_classes=5
    )
    with torch.no_grad():  # wider than torchvision's initialisation, whose head is all zeros
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.mul_(5)
        model.heads.head.weight.normal_()
        model.class_token.normal_()
        model.encoder.pos_embedding.normal_(0, 0.5)
        for module in model.modules():
            for name in ("bias", "in_proj_bias"):
                bias = getattr(module, name, None)
                if zero_biases and isinstance(bias, torch.Tensor):
                    bias.zero_()
    return model.double().eval()


def _windowed(name: str) -> nn.Module:
    """A tiny Swin (two stages, shifted windows) or MaxViT (two stages), biases and BatchNorm means zeroed, the
    relative position bias tables drawn wide."""
    torch.manual_seed(0)
    if name == "swin":
        model: nn.Module = SwinTransformer(
            patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=[4, 4], num_classes=5
        )
    else:
        model = MaxVit(input_size=(32, 32), stem_channels=8, partition_size=2, block_channels=[8, 16],
                       block_layers=[1, 1], head_dim=4, stochastic_depth_prob=0.0, num_classes=5)  # fmt: skip
    with torch.no_grad():
        for module in model.modules():
            if isinstance(getattr(module, "bias", None), torch.Tensor):
                module.bias.zero_()
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.zero_()
                module.running_var.uniform_(0.5, 2.0)
        for parameter_name, parameter in model.named_parameters():
            if "relative_position_bias_table" in parameter_name:
                parameter.normal_()
            elif parameter.dim() > 1 and name == "swin":
                parameter.mul_(3)
    return model.double().eval()


def _images(n: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
def test_torchvision_vit_conserves_relevance(attention: str) -> None:
    model, x = _vit(), _images()
    targets = model(x).argmax(1)
    relevance, absorbed, logits = image_relevance(model, x, targets, epsilon=1e-12, attention=attention)
    total = relevance.flatten(1).sum(1) + sum(absorbed.values())
    assert torch.allclose(total, logits, rtol=1e-4)
    assert {"class_token", "encoder.pos_embedding"} <= set(absorbed)
    assert ("softmax bias" in absorbed) == (attention == "attnlrp")
    assert float(relevance.flatten(1).abs().sum(1).min()) > 0.1 * float(logits.abs().min())
    assert float((relevance.abs() > 1e-9).double().mean()) > 0.9


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
@pytest.mark.parametrize("name", ["swin", "maxvit"])
def test_swin_and_maxvit_conserve_relevance(name: str, attention: str) -> None:
    model, x = _windowed(name), _images(2)
    targets = model(x).argmax(1)
    relevance, absorbed, logits = image_relevance(model, x, targets, epsilon=1e-12, attention=attention)
    total = relevance.flatten(1).sum(1) + sum(absorbed.values(), torch.zeros_like(logits))
    assert torch.allclose(total, logits, rtol=1e-4)
    assert ("added constants" in absorbed) == (attention == "attnlrp")  # CP-LRP: no gradient reaches the scores
    assert float(relevance.flatten(1).abs().sum(1).min()) > 0.1 * float(logits.abs().min())
    assert float((relevance.abs() > 1e-12).double().mean()) > 0.9
    assert len(LRPAttn(model).groups) >= 2


def test_swin_without_its_added_constants_reported_fails_the_check(monkeypatch) -> None:
    """The relative position bias and window mask added as plain additions: their relevance is lost."""
    model, x = _windowed("swin"), _images(2)
    targets = model(x).argmax(1)
    handlers = {
        func: handler
        for func, handler in AttnLRPMode.__torch_function__.__globals__["_HANDLERS"].items()
        if handler is not AttnLRPMode.add
    }
    monkeypatch.setitem(AttnLRPMode.__torch_function__.__globals__, "_HANDLERS", handlers)
    relevance, absorbed, logits = image_relevance(model, x, targets, epsilon=1e-12)
    total = relevance.flatten(1).sum(1) + sum(absorbed.values(), torch.zeros_like(logits))
    assert not torch.allclose(total, logits, rtol=1e-3)


def test_without_its_attention_rules_the_check_fails(monkeypatch) -> None:
    """The attention module passed through whole (no rule on its softmax and products): conservation breaks."""
    model, x = _vit(), _images()
    targets = model(x).argmax(1)
    handlers = dict(AttnLRPMode.__torch_function__.__globals__["_HANDLERS"])
    handlers.pop(F.multi_head_attention_forward)
    monkeypatch.setitem(AttnLRPMode.__torch_function__.__globals__, "_HANDLERS", handlers)
    relevance, absorbed, logits = image_relevance(model, x, targets, epsilon=1e-12)
    total = relevance.flatten(1).sum(1) + sum(absorbed.values())
    assert not torch.allclose(total, logits, rtol=1e-2)


def test_gamma_on_the_attention_projections_changes_the_map_and_conserves() -> None:
    model, x = _vit(), _images()
    targets = model(x).argmax(1)
    groups = layer_groups(model)
    assert list(groups) == ["attention_first", "mlp_first", "attention_last", "mlp_last"]
    assert any(isinstance(layer, nn.MultiheadAttention) for layer in groups["attention_first"])
    plain = LRPAttn(model, epsilon=1e-12)
    gamma = plain.set_kwargs(gamma_attention_first=0.5)
    a, b = plain.attribute(x, targets), gamma.attribute(x, targets)
    assert not torch.allclose(a, b, rtol=1e-3)
    logits = model(x).gather(1, targets[:, None]).squeeze(1)
    total = b.flatten(1).sum(1) + sum(gamma.last_absorbed.values())
    assert torch.allclose(total, logits.sign(), rtol=1e-4)  # the sign seed: ±1


def test_an_attention_the_decomposition_does_not_cover_is_refused() -> None:
    attention = nn.MultiheadAttention(8, 2, add_zero_attn=True).double()
    x = torch.randn(4, 1, 8, dtype=torch.float64, requires_grad=True)
    with AttnLRPMode(), pytest.raises(ValueError, match="this one uses add_zero_attn"):
        attention(x, x, x, need_weights=False)


def test_a_study_searches_lrpattn_on_torchvision_vit() -> None:
    model = _vit(zero_biases=False).float()
    images = _images(12).float()
    result = tune(LRPAttn, model, images, budget=Budget(n_trials=4, n_samples=6),
                  report=Report(panel=False, n_heatmaps=0, reference_rows=False))  # fmt: skip
    assert {trial.params["attention"] for trial in result.study.trials} == {"attnlrp", "cp"}
    assert isinstance(result.best_explainer, LRPAttn)
    assert result.summary()["best (held-out)"].notna().all()


def test_swin_v2s_cosine_attention_is_refused() -> None:
    model = SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2], num_heads=[2], window_size=[4, 4],
                            num_classes=5, block=SwinTransformerBlockV2, downsample_layer=PatchMergingV2)  # fmt: skip
    with pytest.raises(UnsupportedFamilyError, match="'torchvision_swin_v2'"):
        LRPAttn(model)
