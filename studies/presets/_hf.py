"""``hf:PATH_OR_ID``: a Hugging Face model (sequence classification, a causal language model explaining its predicted
next token, or image classification) from a folder saved with ``save_pretrained`` or from the local Hugging Face
cache, never the network; a text model's data is a text file (:mod:`studies.loading._text`) tokenized by its own
tokenizer, an image model's an image folder (or the sample photographs) preprocessed as its image processor says."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._base import Data, Preset
from .._errors import DataError, PresetError, WeightsError
from ..loading._preprocessing import Preprocessing, load_images
from ..loading._text import MAX_TOKENS, label_indices, read_texts, token_ids

HF_PREFIX = "hf:"
#: a text preset's input bounds: token ids have none, and no LRPAttn rule reads them
NO_BOUNDS = torch.zeros(1, 1, 1, 1)
#: the head classes of the tasks read from a config's ``architectures``, by the end of the class name
TASKS = {
    "ForSequenceClassification": "sequence classification",
    "ForCausalLM": "causal language model",
    "LMHeadModel": "causal language model",
    "ForImageClassification": "image classification",
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
    if task == "image classification":
        return _image_preset(source, config)
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
        ids = token_ids(texts, lambda text: list(tokenizer(text)["input_ids"]), max_tokens(config))
        if labels is None:
            return ids, None
        if task == "causal language model":
            raise DataError(
                f"{data_dir.name} has labels, but a language model explains its predicted next token: "
                "give a .txt file, one text a line"
            )
        return ids, label_indices(labels[: len(ids)], getattr(config, "label2id", None), config.num_labels)

    return Preset(
        name=f"{HF_PREFIX}{source}",
        description=f"Hugging Face {config.model_type} {task} from {source}",
        model=model,
        data=data,
        low=NO_BOUNDS,
        high=NO_BOUNDS,
    )


def _image_preset(source: str, config: Any) -> Preset:
    """An image classifier: images resized and normalised as its saved image processor says (without one: the
    config's image size, mean and std 0.5, as ViT's processor)."""
    from explainers.attnlrp import ImageClassifier

    processor = _json(Path(source) / "preprocessor_config.json")
    size = processor.get("size", {})
    side = int(size.get("height", size.get("shortest_edge", config.image_size)) if isinstance(size, dict) else size)
    mean = tuple(processor.get("image_mean", (0.5,) * config.num_channels))
    std = tuple(processor.get("image_std", (0.5,) * config.num_channels))
    preprocessing = Preprocessing(resize=side, crop=side, mean=mean, std=std)
    low, high = preprocessing.bounds()

    def model(weights: str | None, device: torch.device) -> nn.Module:
        return ImageClassifier(_hf_model(source, config, "image classification", weights)).to(device)

    return Preset(
        name=f"{HF_PREFIX}{source}",
        description=f"Hugging Face {config.model_type} image classification from {source} ({preprocessing.describe()})",
        model=model,
        data=partial(load_images, preprocessing),
        low=low,
        high=high,
        defaults={"batch_size": 4},
    )


def _json(path: Path) -> dict:
    """A JSON file's object, {} where there is none."""
    return json.loads(path.read_text()) if path.is_file() else {}


def max_tokens(config: Any) -> int:
    """Tokens per text at most: :data:`MAX_TOKENS`, or fewer where the model has fewer positions (RoBERTa's
    positions start after its padding index)."""
    positions = getattr(config, "max_position_embeddings", None) or MAX_TOKENS
    if config.model_type == "roberta":
        positions -= (config.pad_token_id or 0) + 1
    return min(MAX_TOKENS, positions)


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
        "...ForSequenceClassification, ...ForCausalLM and ...ForImageClassification models"
    )


def _hf_model(source: str, config: Any, task: str, weights: str | None) -> nn.Module:
    """The model with its saved weights, or (``weights="none"``) random weights drawn from the config."""
    from transformers import AutoModelForCausalLM, AutoModelForImageClassification, AutoModelForSequenceClassification

    autos = {"causal language model": AutoModelForCausalLM, "image classification": AutoModelForImageClassification}
    auto = autos.get(task, AutoModelForSequenceClassification)
    if weights == "none":
        return auto.from_config(config).eval()
    if weights not in (None, "DEFAULT"):
        raise WeightsError(f"{HF_PREFIX} models take --weights none (random, from the config) or their saved weights")
    return auto.from_pretrained(source, local_files_only=True).eval()


#: the files one of which a folder with a saved tokenizer holds (transformers would otherwise build an empty one)
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model",
)  # fmt: skip


def _tokenizer(source: str) -> Any | None:
    """The model's tokenizer, None where the folder has none."""
    from transformers import AutoTokenizer

    folder = Path(source)
    if folder.is_dir() and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return None
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        return None


def _text_classifier(model: nn.Module, tokenizer: Any | None) -> nn.Module:
    from explainers.attnlrp import TextClassifier

    ids = {f"{name}_token_id": getattr(tokenizer, f"{name}_token_id", None) for name in ("mask", "pad", "unk")}
    size = model.get_input_embeddings().num_embeddings  # type: ignore[operator]
    vocabulary = None if tokenizer is None else tokenizer.convert_ids_to_tokens(list(range(size)))
    return TextClassifier(model, **ids, vocabulary=vocabulary)
