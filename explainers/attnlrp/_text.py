"""``TextClassifier``: a Hugging Face text model as a classifier of token ids, the form a study and its perturbation
metrics use: one (B, L) tensor of ids in, one logit per class out, with padding and the removed-token baselines
written into the ids themselves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ._hf import check_family, last_attended

#: the removed-token baselines: the embedding of the mask token (the pad token where there is none), of the
#: unknown token, or a zero embedding
TEXT_BASELINES = ("mask", "unk", "zero")


class TextClassifier(nn.Module):
    """``model`` (sequence classification or causal language model) on token ids (B, L): a negative id is padding
    (attention mask 0, never read; perturbation metrics leave it alone), the id ``vocab_size`` stands for a zero
    embedding (the ``"zero"`` baseline). Returns the class logits (B, classes), or a language model's next-token
    logits (B, vocab) at each sample's last attended position.

    ``mask_token_id`` / ``unk_token_id`` (the tokenizer's) name the ``"mask"`` and ``"unk"`` baselines; the pad
    token (``pad_token_id``, else the config's) stands in for a missing mask token. ``vocabulary`` (each id's token
    as text) lets figures show words.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        mask_token_id: int | None = None,
        unk_token_id: int | None = None,
        pad_token_id: int | None = None,
        vocabulary: Sequence[str] | None = None,
    ):
        super().__init__()
        check_family(model)
        self.model = model
        config: Any = model.config
        self.vocab_size = int(model.get_input_embeddings().num_embeddings)  # type: ignore[operator]
        pad = pad_token_id if pad_token_id is not None else getattr(config, "pad_token_id", None)
        self.token_ids = {"mask": mask_token_id if mask_token_id is not None else pad, "unk": unk_token_id}
        self.causal = is_causal(model)
        self.num_labels = int(config.num_labels)
        self.train(model.training)  # in the model's mode: a model loaded for inference stays in eval mode
        self.vocabulary = None if vocabulary is None else [str(token) for token in vocabulary]

    @property
    def n_classes(self) -> int:
        """Classes of a classifier, the vocabulary of a language model."""
        return self.vocab_size if self.causal else self.num_labels

    def baseline_id(self, name: str) -> int:
        """The id that stands for a removed token under the baseline ``name`` (one of :data:`TEXT_BASELINES`)."""
        if name not in TEXT_BASELINES:
            raise ValueError(f"a text baseline is one of {', '.join(TEXT_BASELINES)}; got {name!r}")
        if name == "zero":
            return self.vocab_size
        token = self.token_ids[name]
        if token is None:
            other = "'unk' or 'zero'" if name == "mask" else "'mask' or 'zero'"
            raise ValueError(f"this model's tokenizer has no {name} token: choose the baseline {other}")
        return int(token)

    def available_baselines(self) -> list[str]:
        """The baselines this model's tokenizer gives (``"zero"`` always)."""
        return [name for name in TEXT_BASELINES if name == "zero" or self.token_ids[name] is not None]

    def default_baseline(self) -> str:
        """The baseline a study uses where none is named: the mask token, else the unknown token, else zero."""
        return next((name for name in ("mask", "unk") if self.token_ids[name] is not None), "zero")

    def words(self, ids: torch.Tensor) -> list[list[str]] | None:
        """Each sample's tokens as text, padding dropped (None without a vocabulary)."""
        if self.vocabulary is None:
            return None
        vocabulary = self.vocabulary
        return [
            [vocabulary[i] if 0 <= i < len(vocabulary) else "<zero>" for i in row if i >= 0] for row in ids.tolist()
        ]

    def split(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids safe to embed, the attention mask, where the zero embedding goes) of ids in this class's form."""
        check_ids(ids, self.vocab_size)
        attention_mask = (ids >= 0).long()
        zero = ids == self.vocab_size
        return torch.where((ids >= 0) & ~zero, ids, 0), attention_mask, zero

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        safe, attention_mask, zero = self.split(ids)
        embeddings = self.model.get_input_embeddings()(safe)  # type: ignore[operator]
        embeddings = embeddings.masked_fill(zero[..., None], 0.0)
        extra = {"use_cache": False} if getattr(self.model.config, "use_cache", None) is not None else {}
        logits = self.model(inputs_embeds=embeddings, attention_mask=attention_mask, **extra).logits
        return last_attended(logits, attention_mask) if logits.dim() == 3 else logits


def check_ids(ids: torch.Tensor, vocab_size: int) -> None:
    """Token ids (B, L) of integers below ``vocab_size`` (or equal: the zero embedding), each row attending to at
    least one token."""
    if ids.is_floating_point() or ids.dim() != 2:
        raise ValueError(
            f"a text model takes token ids (B, L) of integers; got {ids.dtype} of shape {tuple(ids.shape)}"
        )
    if (ids > vocab_size).any():
        raise ValueError(f"token id {int(ids.max())} is outside the model's vocabulary of {vocab_size}")
    if not (ids >= 0).any(1).all():
        raise ValueError("a sample is all padding (negative ids): give each sample at least one token")


def is_causal(model: nn.Module) -> bool:
    """A language model head (``...ForCausalLM``, GPT-2's ``LMHeadModel``) rather than a classifier."""
    name = type(model).__name__
    return name.endswith("ForCausalLM") or name.endswith("LMHeadModel")
