"""The known-answer text task: synthetic sentences whose label is decided by planted evidence words, and the tiny
BERT classifier trained on them (in seconds on a CPU). Where the evidence is, is known: one bool mask per sentence.

A sentence is ``[CLS]``, 8 to 14 filler words with one or two evidence words of its class among them, ``[SEP]``,
then padding (negative ids) up to the longest. Filler words carry no information about the label, so a model that
classifies the held-out sentences correctly must read the evidence words, and a faithful explanation puts its
relevance there.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import torch
from torch import Tensor, nn

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
FILLERS = (
    "the a this that one some film movie story plot scene actor cast music score script it was is seemed "
    "felt looked and but so then also quite rather fairly somewhat really about with from into over after "
    "before during while"
).split()
EVIDENCE = {0: ("awful", "boring", "dull"), 1: ("great", "superb", "moving")}
VOCABULARY = (*SPECIAL, *FILLERS, *EVIDENCE[0], *EVIDENCE[1])
TOKEN = {word: index for index, word in enumerate(VOCABULARY)}

RECIPE: dict[str, Any] = {
    "vocabulary": VOCABULARY,
    "evidence": {str(label): words for label, words in EVIDENCE.items()},
    "words": (8, 14),
    "evidence_words": (1, 2),
    "n_train": 3000,
    "held_out": 256,
    "epochs": 4,
    "batch_size": 64,
    "learning_rate": 2e-3,
    "model": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64},
    "seed": 0,
}
#: the model's positions: the longest text it reads (a sentence is at most 16 tokens)
MAX_POSITIONS = 32
RECIPE_HASH = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:10]


def make_sentences(n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` sentences as (token ids (n, L) with -1 padding, labels (n,), evidence masks bool (n, L))."""
    generator = torch.Generator().manual_seed(seed)
    low, high = RECIPE["words"]
    length = high + 2
    ids = torch.full((n, length), -1, dtype=torch.long)
    masks = torch.zeros(n, length, dtype=torch.bool)
    labels = torch.randint(0, 2, (n,), generator=generator)
    fillers = torch.tensor([TOKEN[word] for word in FILLERS])
    for row in range(n):
        words = int(torch.randint(low, high + 1, (1,), generator=generator))
        content = fillers[torch.randint(len(fillers), (words,), generator=generator)]
        n_evidence = int(
            torch.randint(RECIPE["evidence_words"][0], RECIPE["evidence_words"][1] + 1, (1,), generator=generator)
        )
        places = torch.randperm(words, generator=generator)[:n_evidence]
        choices = torch.tensor([TOKEN[word] for word in EVIDENCE[int(labels[row])]])
        content[places] = choices[torch.randint(len(choices), (n_evidence,), generator=generator)]
        ids[row, : words + 2] = torch.cat([torch.tensor([TOKEN["[CLS]"]]), content, torch.tensor([TOKEN["[SEP]"]])])
        masks[row, places + 1] = True
    return ids, labels, masks


def build_text_evidence_model() -> nn.Module:
    """The untrained classifier: a 2-layer BERT (hidden 32) on the task's vocabulary, as a TextClassifier."""
    from explainers.attnlrp import TextClassifier

    from ._hf import import_transformers

    config = import_transformers().BertConfig(
        vocab_size=len(VOCABULARY),
        num_labels=2,
        max_position_embeddings=MAX_POSITIONS,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=TOKEN["[PAD]"],
        **RECIPE["model"],
    )
    model = import_transformers().BertForSequenceClassification(config).eval()
    return TextClassifier(model, mask_token_id=TOKEN["[MASK]"], unk_token_id=TOKEN["[UNK]"], vocabulary=VOCABULARY)


def held_out_sentences() -> tuple[Tensor, Tensor, Tensor]:
    """The held-out sentences (ids, labels, masks): drawn from a seed the training never uses."""
    return make_sentences(RECIPE["held_out"], RECIPE["seed"] + 1)


def train_text_evidence_model() -> tuple[nn.Module, dict]:
    """Train the classifier on its own sentences; returns it (eval mode) and its report (held-out accuracy,
    seconds)."""
    began = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RECIPE["seed"])
        model = build_text_evidence_model()
        ids, labels, _ = make_sentences(RECIPE["n_train"], RECIPE["seed"])
        optimizer = torch.optim.Adam(model.parameters(), lr=RECIPE["learning_rate"])
        model.train()
        for _ in range(RECIPE["epochs"]):
            for batch in torch.randperm(len(ids)).split(RECIPE["batch_size"]):
                loss = nn.functional.cross_entropy(model(ids[batch]), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()
    held_ids, held_labels, _ = held_out_sentences()
    with torch.no_grad():
        accuracy = float((model(held_ids).argmax(1) == held_labels).float().mean())
    return model, {"accuracy": accuracy, "train_seconds": time.perf_counter() - began}
