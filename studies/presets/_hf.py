"""``hf:PATH_OR_ID``: a Hugging Face text model (sequence classification, or a causal language model explaining its
predicted next token) from a folder saved with ``save_pretrained`` or from the local Hugging Face cache, never the
network; its data a text file (:mod:`studies.loading._text`) tokenized by the model's own tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._base import Data, Preset
from .._errors import DataError, PresetError, WeightsError
from ..loading._text import label_indices, read_texts, token_ids

HF_PREFIX = "hf:"
#: the head classes of the tasks read from a config's ``architectures``, by the end of the class name
TASKS = {
    "ForSequenceClassification": "sequence classification",
    "ForCausalLM": "causal language model",
    "LMHeadModel": "causal language model",
}


def import_transformers() -> Any:
    """The ``transformers`` module, or a one-line PresetError naming the extra that installs it."""
    try:
        import transformers
    except ImportError:
        raise PresetError('Hugging Face models need the hf extra: pip install -e ".[hf]"') from None
    return transformers


def hf_preset(source: str) -> Preset:
    """The preset of ``hf:`` + ``source`` (a folder or a model id in the local cache); a one-line PresetError for a
    missing model, an unknown task or a family the AttnLRP rules do not cover, before any weights are read."""
    from explainers.attnlrp import FAMILIES

    import_transformers()
    config = _config(source)
    task = _task(config, source)
    if config.model_type not in FAMILIES:
        covered = ", ".join(sorted(FAMILIES))
        raise PresetError(f"{HF_PREFIX}{source} is a {config.model_type!r} model; the AttnLRP rules cover {covered}")
    loaded: dict[str, Any] = {}

    def model(weights: str | None, device: torch.device) -> nn.Module:
        loaded["tokenizer"] = tokenizer = _tokenizer(source)
        return _text_classifier(_hf_model(source, config, task, weights), tokenizer).to(device)

    def data(data_dir: Path | None, n_samples: int | None) -> Data:
        if data_dir is None:
            raise DataError(f"{HF_PREFIX}{source} has no data of its own: pass --data FILE (.txt, .csv or .jsonl)")
        texts, labels = read_texts(data_dir)
        texts = texts[:n_samples] if n_samples else texts
        tokenizer = loaded.get("tokenizer") or _tokenizer(source)
        if tokenizer is None:
            raise DataError(
                f"{HF_PREFIX}{source} has no tokenizer: save one beside the model (tokenizer.save_pretrained)"
            )
        ids = token_ids(texts, lambda text: list(tokenizer(text)["input_ids"]))
        if labels is None:
            return ids, None
        if task == "causal language model":
            raise DataError(
                f"{data_dir.name} has labels, but a language model explains its predicted next token: "
                "give a .txt file, one text a line"
            )
        return ids, label_indices(labels[: len(ids)], getattr(config, "label2id", None), config.num_labels)

    no_bounds = torch.zeros(1, 1, 1, 1)  # token ids have no pixel bounds; no LRPAttn rule reads them
    return Preset(
        name=f"{HF_PREFIX}{source}",
        description=f"Hugging Face {config.model_type} {task} from {source}",
        model=model,
        data=data,
        low=no_bounds,
        high=no_bounds,
    )


def _config(source: str) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as error:
        reason = str(error).splitlines()[0]
        raise PresetError(
            f"no Hugging Face model at {source!r} (a folder saved with save_pretrained, or a model id in the local "
            f"cache): {reason}"
        ) from None


def _task(config: Any, source: str) -> str:
    """The task of the config's first architecture, by its head class."""
    architecture = (getattr(config, "architectures", None) or [""])[0]
    for suffix, task in TASKS.items():
        if architecture.endswith(suffix):
            return task
    raise PresetError(
        f"{HF_PREFIX}{source} is a {architecture or 'headless'} model; a study explains "
        "...ForSequenceClassification and ...ForCausalLM models"
    )


def _hf_model(source: str, config: Any, task: str, weights: str | None) -> nn.Module:
    """The model with its saved weights, or (``weights="none"``) random weights drawn from the config."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    auto = AutoModelForCausalLM if task == "causal language model" else AutoModelForSequenceClassification
    if weights == "none":
        return auto.from_config(config).eval()
    if weights not in (None, "DEFAULT"):
        raise WeightsError(f"{HF_PREFIX} models take --weights none (random, from the config) or their saved weights")
    return auto.from_pretrained(source, local_files_only=True).eval()


def _tokenizer(source: str) -> Any | None:
    """The model's tokenizer, None where the folder has none."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        return None


def _text_classifier(model: nn.Module, tokenizer: Any | None) -> nn.Module:
    from explainers.attnlrp import TextClassifier

    ids = {name: getattr(tokenizer, f"{name}_token_id", None) for name in ("mask", "pad", "unk")}
    mask = ids["mask"] if ids["mask"] is not None else ids["pad"]
    size = model.get_input_embeddings().num_embeddings  # type: ignore[operator]
    vocabulary = None if tokenizer is None else tokenizer.convert_ids_to_tokens(list(range(size)))
    return TextClassifier(model, mask_token_id=mask, unk_token_id=ids["unk"], vocabulary=vocabulary)
