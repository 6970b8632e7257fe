"""AttnLRP relevance of Hugging Face transformers: per token for text models (at the input embeddings, summed over
the embedding dimension), per pixel for image models; with the relevance absorbed on the way (the softmax's bias
terms, position and token-type embeddings, a class token), so that the two add up to the explained logit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torchvision.models import MaxVit, SwinTransformer, VisionTransformer
from torchvision.models.swin_transformer import ShiftedWindowAttentionV2

from .._model_state import evaluation_mode
from ._models import Attribution, attention_rules

#: torchvision's transformers, by the name their family goes by here
TORCHVISION_VIT = "torchvision_vit"
TORCHVISION = {VisionTransformer: TORCHVISION_VIT, SwinTransformer: "torchvision_swin", MaxVit: "torchvision_maxvit"}
#: the model families (``config.model_type``, and torchvision's ViT) whose operations the rules cover, each proven
#: to conserve relevance; per family, the parameters added to the activations as constants (reported, per sample),
#: by the end of their name
FAMILIES: dict[str, tuple[str, ...]] = {
    "bert": (),
    "distilbert": (),
    "roberta": (),
    "gpt2": (),
    "llama": (),
    "qwen2": (),
    "mistral": (),
    "gemma": (),
    "vit": ("embeddings.cls_token", "embeddings.position_embeddings"),
    TORCHVISION_VIT: ("class_token", "encoder.pos_embedding"),
    "torchvision_swin": (),
    "torchvision_maxvit": (),
}


class UnsupportedFamilyError(ValueError):
    """A Hugging Face model family whose operations the AttnLRP rules are not proven on."""


def check_family(model: nn.Module) -> str:
    """The model's family (``config.model_type``, or one of :data:`TORCHVISION`); a one-line error for a family the
    rules do not cover."""
    family = getattr(getattr(model, "config", None), "model_type", None)
    family = TORCHVISION.get(type(model), family)
    if any(isinstance(module, ShiftedWindowAttentionV2) for module in model.modules()):
        family = "torchvision_swin_v2"  # cosine attention (a normalised query and key, a learnt scale): no rule
    if family not in FAMILIES:
        supported = ", ".join(sorted(FAMILIES))
        raise UnsupportedFamilyError(f"AttnLRP is not proven on the model family {family!r}; supported: {supported}")
    return family


def text_relevance(
    model: nn.Module,
    input_ids: torch.Tensor,
    targets: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    epsilon: float = 1e-6,
    attention: str = "attnlrp",
    gammas: dict[nn.Module, float] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """(relevance per token (B, L), the relevance absorbed per sample by part, the explained logits (B,)). The
    logit is the target class's (sequence classification) or the target token's at the last attended position
    (causal language model)."""
    check_family(model)
    captured: list[torch.Tensor] = []

    def capture(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        """The input embeddings as the tensor the relevance is read at (the model computes its own positions)."""
        captured.append(output.detach().requires_grad_(True))
        return captured[-1]

    with evaluation_mode(model):
        handle = _input_embeddings(model).register_forward_hook(capture)
        try:
            with _attribution(model, len(input_ids), epsilon, attention, gammas) as record:
                extra = {"use_cache": False} if getattr(model.config, "use_cache", None) is not None else {}
                logits = model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits
                chosen = _chosen(logits, targets, attention_mask)
        finally:
            handle.remove()
        (embeddings,) = captured
        gradients = _gradients(chosen, embeddings, record)
    relevance = (embeddings * gradients.pop("")).sum(-1)
    return relevance.detach(), record.absorbed(gradients), chosen.detach()


def image_relevance(
    model: nn.Module,
    pixel_values: torch.Tensor,
    targets: torch.Tensor,
    epsilon: float = 1e-6,
    attention: str = "attnlrp",
    gammas: dict[nn.Module, float] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """(relevance per pixel (B, C, H, W), the relevance absorbed per sample by part, the explained logits (B,)) of a
    Hugging Face image classifier or torchvision's ViT."""
    check_family(model)
    with evaluation_mode(model):
        pixels = pixel_values.detach().requires_grad_(True)
        with _attribution(model, len(pixels), epsilon, attention, gammas) as record:
            chosen = _chosen(image_logits(model, pixels), targets)
        gradients = _gradients(chosen, pixels, record)
    relevance = pixels * gradients.pop("")
    return relevance.detach(), record.absorbed(gradients), chosen.detach()


def image_logits(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """The class logits of an image model: a Hugging Face model's ``.logits``, a torchvision model's output."""
    if type(model) in TORCHVISION:
        return model(pixels)
    return model(pixel_values=pixels).logits


@contextlib.contextmanager
def _attribution(
    model: nn.Module, batch_size: int, epsilon: float, attention: str, gammas: dict[nn.Module, float] | None
) -> Iterator[Attribution]:
    """:func:`attention_rules` with the family's constants reported: embeddings other than the input's, and the
    family's parameters added to the activations (each made a per-sample tensor meanwhile)."""
    inputs = _input_embeddings(model) if hasattr(model, "get_input_embeddings") else None
    constants: dict[str, nn.Module] = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Embedding) and module is not inputs
    }
    with attention_rules(model, batch_size, epsilon, attention, constants, gammas) as record:
        with _per_sample(model, FAMILIES[check_family(model)], record):
            yield record


@contextlib.contextmanager
def _per_sample(model: nn.Module, names: tuple[str, ...], record: Attribution) -> Iterator[None]:
    """Each named parameter replaced by a copy expanded to the batch that receives a gradient (its relevance per
    sample), reported as a constant; the parameter back on leaving."""
    swapped = []
    full_names = [full for full, _ in model.named_parameters() if any(full.endswith(name) for name in names)]
    try:
        for name in full_names:
            owner_name, _, attribute = name.rpartition(".")
            owner = model.get_submodule(owner_name)
            parameter = owner._parameters.pop(attribute)
            assert parameter is not None
            swapped.append((owner, attribute, parameter))
            copy = parameter.detach().expand(record.batch_size, *parameter.shape[1:]).clone().requires_grad_(True)
            setattr(owner, attribute, copy)
            record.constants[name] = copy
        yield
    finally:
        for owner, attribute, parameter in reversed(swapped):
            delattr(owner, attribute)
            owner.register_parameter(attribute, parameter)


def _input_embeddings(model: nn.Module) -> nn.Module:
    """The module that maps token ids to the input embeddings (Hugging Face's ``get_input_embeddings``)."""
    return model.get_input_embeddings()  # type: ignore[operator]


def last_attended(logits: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """A language model's logits (B, L, vocab) at each sample's last attended position (the last without a
    mask): (B, vocab)."""
    if attention_mask is None:
        return logits[:, -1]
    positions = torch.arange(1, attention_mask.shape[1] + 1, device=logits.device)
    last = (attention_mask.to(logits.device).bool() * positions).argmax(1)
    return logits[torch.arange(len(logits), device=logits.device), last]


def _chosen(logits: torch.Tensor, targets: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The explained logit of each sample: the target's, at the last attended position of a language model's
    output."""
    if logits.dim() == 3:
        logits = last_attended(logits, attention_mask)
    return logits.gather(1, targets.to(logits.device).reshape(-1, 1)).squeeze(1)


def _gradients(chosen: torch.Tensor, inputs: torch.Tensor, record: Attribution) -> dict[str, torch.Tensor]:
    """The gradients (AttnLRP's modified ones) of the explained logits: at the inputs (key "") and at each
    reported constant."""
    names = list(record.constants)
    tensors = [inputs, *(record.constants[name] for name in names)]
    gradients = torch.autograd.grad(chosen.sum(), tensors, allow_unused=True)
    result = {"": gradients[0] if gradients[0] is not None else torch.zeros_like(inputs)}
    result.update({name: g for name, g in zip(names, gradients[1:]) if g is not None})
    return result
