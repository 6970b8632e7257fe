"""AttnLRP :cite:p:`achtibat2024attnlrp` and CP-LRP on the operations themselves (a ``TorchFunctionMode``), for any
model whose operations they cover: Hugging Face transformers (BERT, GPT-2, LLaMA, Qwen2, Mistral, Gemma, ViT)."""

from ._explainer import LRPAttn
from ._groups import layer_groups
from ._hf import FAMILIES, UnsupportedFamilyError, check_family, image_relevance, text_relevance
from ._image import ImageClassifier
from ._mode import ATTENTION_RULES, AttnLRPMode
from ._models import attention_rules
from ._text import TEXT_BASELINES, TextClassifier

__all__ = [
    "ATTENTION_RULES",
    "FAMILIES",
    "ImageClassifier",
    "AttnLRPMode",
    "LRPAttn",
    "TEXT_BASELINES",
    "TextClassifier",
    "UnsupportedFamilyError",
    "attention_rules",
    "check_family",
    "image_relevance",
    "layer_groups",
    "text_relevance",
]
