"""``LRPAttn``: AttnLRP on a Hugging Face transformer as an explainer with the seed API (``get_tunables``, ``copy``,
``set_kwargs``): epsilon on the dense layers, the attention rule, and a gamma per layer group."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._base import SEEDS
from .._tunable import Tunable, Tunables
from .._variants import LOG_UNIT_INTERVAL
from ._groups import layer_groups
from ._hf import TORCHVISION, check_family, image_logits, image_relevance, text_relevance
from ._image import ImageClassifier
from ._mode import ATTENTION_RULES, check_attention_rule
from ._text import TextClassifier, is_causal

#: the prefix of a layer group's gamma tunable (``gamma_attention_first``, ``gamma_mlp_last``, ...)
GAMMA = "gamma_"


class LRPAttn:
    """AttnLRP :cite:p:`achtibat2024attnlrp` on a Hugging Face transformer or torchvision's ViT, Swin or MaxViT
    (the families of :data:`~explainers.attnlrp.FAMILIES`).

    ``epsilon``: the epsilon rule's stabilizer on the dense layers; ``attention``: ``"attnlrp"`` (the softmax's
    Taylor rule) or ``"cp"`` (CP-LRP, the attention weights held constant); ``gamma``: layer group -> the gamma of
    its dense layers (the gamma rule instead of epsilon there), the groups of :func:`layer_groups` (attention and
    MLP by depth), set one by one through ``set_kwargs(gamma_<group>=...)``; a group without one keeps epsilon,
    which the gamma rule at the search space's lower bound (1e-6) equals within 1e-6. :meth:`attribute` returns one
    relevance per token for token ids, per pixel for images; :attr:`last_absorbed` names what the last
    attribution's relevance lost on the way, per sample (the softmax's bias terms, position embeddings, a class
    token). ``seed`` is what the relevance sums to with what was absorbed, as for the LRP variants: ``"sign"`` ±1 (the
    sign of the explained logit), ``"logit"`` the logit, ``"one_hot"`` 1. ``model`` is the model itself, or a
    :class:`TextClassifier` or :class:`ImageClassifier` of it (the forms ``tune()`` takes).
    """

    PARAMETERS = ("epsilon", "attention", "gamma", "seed")

    def __init__(
        self,
        model: nn.Module,
        *,
        epsilon: float = 1e-6,
        attention: str = "attnlrp",
        gamma: dict[str, float] | None = None,
        seed: str = "sign",
    ) -> None:
        if seed not in SEEDS:
            raise ValueError(f"seed must be one of {', '.join(map(repr, SEEDS))}, got {seed!r}")
        self.seed = seed
        self.hf_model = model.model if isinstance(model, (TextClassifier, ImageClassifier)) else model
        check_family(self.hf_model)
        check_attention_rule(attention)
        self.model, self.epsilon, self.attention = model, float(epsilon), attention
        self.groups = layer_groups(self.hf_model)
        unknown = sorted(set(gamma or {}) - set(self.groups))
        if unknown:
            raise ValueError(f"no layer group {', '.join(unknown)} in this model; its groups: {', '.join(self.groups)}")
        self.gamma = {group: float(value) for group, value in (gamma or {}).items()}
        self.last_absorbed: dict[str, torch.Tensor] = {}

    # -- the search space ------------------------------------------------------------------------------
    def get_tunables(self) -> Tunables:
        """epsilon, the attention rule, and a gamma per layer group of this model."""
        tunables: Tunables = {
            "epsilon": (float, dict(LOG_UNIT_INTERVAL)),
            "attention": (str, {"choices": list(ATTENTION_RULES)}),
        }
        tunables.update({GAMMA + group: (float, dict(LOG_UNIT_INTERVAL)) for group in self.groups})
        return tunables

    def tunables(self) -> dict[str, Tunable]:
        """The search space as :class:`Tunable` values, in the order of :meth:`get_tunables`."""
        return {name: Tunable.from_spec(name, kind, spec) for name, (kind, spec) in self.get_tunables().items()}

    def get_conditions(self) -> dict[str, dict[str, list[Any]]]:
        """No tunable depends on another."""
        return {}

    def tunable_values(self) -> dict[str, Any]:
        """The current value of each tunable; a group without a gamma at the lower bound, where the gamma rule
        equals its epsilon rule."""
        low = LOG_UNIT_INTERVAL["low"]
        gammas = {GAMMA + group: self.gamma.get(group, low) for group in self.groups}
        return {"epsilon": self.epsilon, "attention": self.attention, **gammas}

    @classmethod
    def variant_configurations(cls) -> dict[str, dict[str, Any]]:
        """CP-LRP (the attention weights held constant): the other rule a study starts from."""
        return {"CP-LRP": {"attention": "cp"}}

    @classmethod
    def accepted_kwargs(cls) -> frozenset[str]:
        """The constructor's keywords (a group's gamma also as ``gamma_<group>`` in :meth:`set_kwargs`)."""
        return frozenset(("model", *cls.PARAMETERS))

    @property
    def n_classes(self) -> int:
        """Classes of a classifier, the vocabulary of a language model."""
        if isinstance(self.model, TextClassifier):
            return self.model.n_classes
        if type(self.hf_model) in TORCHVISION:  # the last Linear of a torchvision classifier is its head
            return int([m for m in self.hf_model.modules() if isinstance(m, nn.Linear)][-1].out_features)
        config: Any = self.hf_model.config
        return int(config.vocab_size if is_causal(self.hf_model) else config.num_labels)

    # -- values ----------------------------------------------------------------------------------------
    def parameters(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this explainer."""
        return {
            "model": self.model,
            "epsilon": self.epsilon,
            "attention": self.attention,
            "gamma": dict(self.gamma),
            "seed": self.seed,
        }

    def settings(self) -> dict[str, Any]:
        """The parameters without the model: what a study records beside each trial."""
        return {name: value for name, value in self.parameters().items() if name != "model"}

    def copy(self) -> LRPAttn:
        """A new explainer with the same parameters."""
        return self.set_kwargs()

    def set_kwargs(self, **kwargs: Any) -> LRPAttn:
        """A new explainer with ``kwargs`` replacing the current parameters (``gamma_<group>`` sets one group's
        gamma); this one is unchanged."""
        parameters = self.parameters()
        gammas = {name.removeprefix(GAMMA): kwargs.pop(name) for name in list(kwargs) if name.startswith(GAMMA)}
        unknown = sorted(set(kwargs) - set(self.PARAMETERS))
        if unknown:
            valid = [*self.PARAMETERS, *(GAMMA + group for group in self.groups)]
            raise TypeError(
                f"LRPAttn.set_kwargs() got unknown parameter(s) {', '.join(map(repr, unknown))}; "
                f"valid parameters are: {', '.join(valid)}"
            )
        parameters.update(kwargs)
        parameters["gamma"] = {**parameters["gamma"], **gammas}
        return type(self)(**parameters)

    def describe(self) -> str:
        rule = "AttnLRP" if self.attention == "attnlrp" else "CP-LRP"
        gammas = ", ".join(f"{group} gamma={value:g}" for group, value in self.gamma.items())
        return f"{rule}, epsilon={self.epsilon:g}" + (f", {gammas}" if gammas else "")

    def __repr__(self) -> str:
        return f"LRPAttn({type(self.model).__name__}, {self.describe()})"

    # -- attribution -----------------------------------------------------------------------------------
    def check_inputs(self, inputs: torch.Tensor) -> None:
        """Run the model once on the first sample: a ValueError naming the problem where it rejects the inputs."""
        try:
            with torch.no_grad():
                self._forward(inputs[:1])
        except (ValueError, RuntimeError, IndexError, TypeError) as error:
            raise ValueError(
                f"{type(self.hf_model).__name__} rejects the inputs {tuple(inputs.shape)}: {error}"
            ) from None

    def _forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The logits the relevance explains: of pixels, or of token ids through a :class:`TextClassifier`."""
        if inputs.is_floating_point():
            return image_logits(self.hf_model, inputs)
        model = self.model if isinstance(self.model, TextClassifier) else TextClassifier(self.hf_model)
        return model(inputs)

    def attribute_many(
        self, configurations: list[dict[str, Any]], inputs: torch.Tensor, targets: torch.Tensor
    ) -> list[torch.Tensor]:
        """``[self.set_kwargs(**c).attribute(inputs, targets) for c in configurations]``."""
        return [self.set_kwargs(**configuration).attribute(inputs, targets) for configuration in configurations]

    def attribute(
        self, inputs: torch.Tensor, targets: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Relevance per token (B, L) for token ids, per pixel (B, C, H, W) for images. Through a
        :class:`TextClassifier`, negative ids are padding (the attention mask)."""
        gammas = {
            layer: self.gamma[group] for group, layers in self.groups.items() if group in self.gamma for layer in layers
        }
        targets = torch.as_tensor(targets).reshape(-1)
        if inputs.is_floating_point():
            relevance, absorbed, logits = image_relevance(
                self.hf_model, inputs, targets, self.epsilon, self.attention, gammas
            )
        else:
            if isinstance(self.model, TextClassifier):
                inputs, attention_mask, zero = self.model.split(inputs)
                if zero.any():
                    raise ValueError("the zero-embedding id is a perturbation baseline, not a token to explain")
            relevance, absorbed, logits = text_relevance(
                self.hf_model, inputs, targets, attention_mask, self.epsilon, self.attention, gammas
            )
        scale = _seed_scale(logits, self.seed)  # the rules are linear in the relevance put in
        self.last_absorbed = {name: part * scale for name, part in absorbed.items()}
        return relevance * scale.reshape(-1, *(1,) * (relevance.dim() - 1))


def _seed_scale(logits: torch.Tensor, seed: str) -> torch.Tensor:
    """Per sample, what turns relevance that sums to the logit into relevance that sums to the seed: 1 (``"logit"``),
    1 / |logit| (``"sign"``: ±1) or 1 / logit (``"one_hot"``: 1); 0 where the logit is 0."""
    if seed == "logit":
        return torch.ones_like(logits)
    divisor = logits.abs() if seed == "sign" else logits
    return torch.where(logits == 0, 0.0, 1.0 / torch.where(logits == 0, 1.0, divisor))
