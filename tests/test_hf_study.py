"""A study on a Hugging Face text model: token ids with padding as negative ids, removed tokens replaced by a named
baseline in embedding space (padding never), LRPAttn searched by tune() and by ``--model hf:PATH`` on text files."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from explainers.attnlrp import LRPAttn, TextClassifier
from metrics import get_metric
from metrics._base import layout_of
from metrics.perturbation._engine import masked_scores, softmax
from studies import DataError, PresetError
from studies.loading._text import read_texts, token_ids
from tuner import Budget, Objective, Report, tune
from tuner.cli._main import main

SHAPE = {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 32, "intermediate_size": 64}
WORDS = "the a cat dog sat on mat good bad film was very not".split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = len(SPECIAL) + len(WORDS)


def _bert(double: bool = True) -> transformers.BertForSequenceClassification:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=VOCAB, num_labels=3, initializer_range=0.2, **SHAPE)
    model = transformers.BertForSequenceClassification(config).eval()
    return model.double() if double else model


def _llama() -> transformers.LlamaForCausalLM:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=VOCAB, num_key_value_heads=2, initializer_range=0.2, **SHAPE)
    model = transformers.LlamaForCausalLM(config).eval().double()
    for module in model.modules():
        if isinstance(getattr(module, "bias", None), torch.Tensor):
            module.bias.data.zero_()
    return model


def _ids(n: int = 6, length: int = 8, seed: int = 1) -> torch.Tensor:
    ids = torch.randint(len(SPECIAL), VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))
    ids[::2, length - 3 :] = -1  # every other sample padded
    return ids


@pytest.mark.parametrize("make", [_bert, _llama], ids=["bert", "llama"])
def test_negative_ids_are_padding_the_model_never_reads(make) -> None:
    model = TextClassifier(make())
    ids = _ids()
    padded = model(ids[:1])  # the last 3 positions are padding
    assert torch.allclose(padded, model(ids[:1, :5]), atol=1e-10)
    assert torch.allclose(padded, model(torch.cat([ids[:1, :5], torch.full((1, 7), -1)], 1)), atol=1e-10)
    assert not torch.allclose(padded, model(ids[1:2, :5]), atol=1e-3)  # other tokens: other logits


def test_the_zero_id_is_a_zero_embedding() -> None:
    hf = _bert()
    model = TextClassifier(hf)
    ids = _ids()[1:2]
    removed = ids.clone()
    removed[0, 2] = model.baseline_id("zero")
    embeddings = hf.get_input_embeddings()(ids).clone()
    embeddings[0, 2] = 0.0
    assert model.baseline_id("zero") == VOCAB
    assert torch.allclose(model(removed), hf(inputs_embeds=embeddings).logits, atol=1e-10)
    assert not torch.allclose(model(removed), model(ids), atol=1e-4)


def test_perturbation_replaces_tokens_and_leaves_padding() -> None:
    model = TextClassifier(_bert(), mask_token_id=4)
    ids = _ids()
    targets = model(ids).argmax(1)
    everything = torch.ones(len(ids), ids.shape[1], dtype=torch.bool)
    scores = masked_scores(model, ids, targets, torch.tensor(4), layout_of(ids), torch.arange(len(ids)), everything,
                           softmax, 8)  # fmt: skip
    expected = softmax(model(torch.where(ids >= 0, 4, ids))).gather(1, targets[:, None]).squeeze(1)
    assert torch.allclose(scores, expected.float(), atol=1e-6)
    # an AbPC of token ids is finite and differs between two maps
    abpc = get_metric("abpc", model, baseline=4, n_steps=5)
    first, second = torch.rand(ids.shape, generator=torch.Generator().manual_seed(2)), -torch.rand(ids.shape)
    assert not torch.allclose(abpc(ids, targets, first), abpc(ids, targets, second))


def test_baselines_come_from_the_tokenizer_and_a_missing_one_is_refused() -> None:
    with_tokens = TextClassifier(_bert(), mask_token_id=4, unk_token_id=1)
    assert [with_tokens.baseline_id(name) for name in ("mask", "unk")] == [4, 1]
    assert with_tokens.default_baseline() == "mask"
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4))
    bare = TextClassifier(gpt2)  # GPT-2: no pad, mask or unk token
    assert bare.default_baseline() == "zero" and bare.available_baselines() == ["zero"]
    with pytest.raises(ValueError, match="no mask token: choose the baseline 'unk' or 'zero'"):
        bare.baseline_id("mask")


def test_lrpattn_on_padded_text_conserves_and_gives_padding_nothing() -> None:
    hf = _llama()
    explainer = LRPAttn(TextClassifier(hf))
    ids = _ids(n=4)
    with torch.no_grad():
        logits = TextClassifier(hf)(ids)
    targets = logits.argmax(1)
    relevance = explainer.attribute(ids, targets)
    assert relevance.shape == ids.shape
    assert torch.all(relevance[ids < 0] == 0)
    absorbed = sum(explainer.last_absorbed.values(), torch.zeros(len(ids), dtype=torch.float64))
    explained = logits.gather(1, targets[:, None]).squeeze(1)  # the logit at each sample's last token
    assert torch.allclose(relevance.sum(1) + absorbed, explained.sign(), rtol=1e-4)  # the sign seed: ±1
    assert float((relevance[ids >= 0].abs() > 1e-8).double().mean()) > 0.9


def test_tune_searches_lrpattn_on_a_text_model_with_a_named_baseline(tmp_path) -> None:
    model = TextClassifier(_bert(double=False), mask_token_id=4)
    ids = _ids(n=16, length=8)
    storage = f"sqlite:///{tmp_path / 'text.db'}"
    result = tune(None, model, ids, budget=Budget(n_trials=6, n_samples=8), storage=storage, study_name="text",
                  report=Report(panel=False, n_heatmaps=0))  # fmt: skip
    study = result.study
    assert study.user_attrs["baseline"] == "mask (token id 4) (the study default for these inputs)"
    assert study.user_attrs["metric_settings"]["n_steps"] == 8  # no more steps than tokens
    attention = {trial.params["attention"] for trial in study.trials}
    assert attention == {"attnlrp", "cp"}  # CP-LRP is one of the first trials
    assert {"epsilon", "gamma_attention_first", "gamma_mlp_last"} <= set(study.trials[-1].params)
    assert isinstance(result.best_explainer, LRPAttn)
    assert result.summary()["best (held-out)"].notna().all()


@pytest.mark.parametrize(
    "baseline, message",
    [("unk", "no unk token: choose the baseline 'mask' or 'zero'"), ("blur", "one of mask, unk, zero")],
)
def test_a_baseline_the_text_model_lacks_is_refused_before_any_study(tmp_path, baseline, message) -> None:
    model = TextClassifier(_bert(double=False), mask_token_id=4)
    with pytest.raises(ValueError, match=message):
        tune(None, model, _ids(), objective=Objective(baseline=baseline), storage=f"sqlite:///{tmp_path / 'x.db'}")
    assert not (tmp_path / "x.db").exists()


# -- the command line ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_bert(tmp_path_factory):
    """A tiny BERT classifier and its word-level tokenizer saved with save_pretrained, with a labelled CSV."""
    folder = tmp_path_factory.mktemp("bert")
    tokenizer = Tokenizer(models.WordLevel({t: i for i, t in enumerate([*SPECIAL, *WORDS])}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", mask_token="[MASK]"
    ).save_pretrained(folder)
    config = transformers.BertConfig(
        vocab_size=VOCAB, num_labels=2, architectures=["BertForSequenceClassification"], **SHAPE
    )
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    lines = [f"the {w} film was {'very ' * (i % 3)}{'good' if i % 2 else 'bad'},{i % 2}" for i, w in enumerate(WORDS)]
    (folder / "texts.csv").write_text("text,label\n" + "\n".join(lines))
    return folder


def test_text_files_are_read_and_padded(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("one two\n\nthree\n")
    (tmp_path / "b.jsonl").write_text('{"text": "x", "label": 1}\n{"text": "y z", "label": "0"}\n')
    (tmp_path / "c.csv").write_text("sentence,label\nx,1\n")
    assert read_texts(tmp_path / "a.txt") == (["one two", "three"], None)
    assert read_texts(tmp_path / "b.jsonl") == (["x", "y z"], ["1", "0"])
    with pytest.raises(DataError, match="no text field"):
        read_texts(tmp_path / "c.csv")
    ids = token_ids(["a b c", "d"], lambda text: [ord(c) for c in text.split()])
    assert ids.tolist() == [[97, 98, 99], [100, -1, -1]]


def test_command_line_tunes_a_saved_hf_model_on_a_text_file(saved_bert, tmp_path, capsys) -> None:
    """One text a line, no labels: the model's predictions are explained; the verdict is printed and the heatmaps
    figure written."""
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("\n".join(f"the {word} film was good" for word in WORDS))
    out = tmp_path / "out"
    code = main(["run", "--model", f"hf:{saved_bert}", "--data", str(sentences), "--n-trials", "3", "--n-samples",
                 "6", "--storage", f"sqlite:///{tmp_path / 'txt.db'}", "--out", str(out), "--no-progress",
                 "--no-panel"])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "verdict on 6 held-out samples" in printed.out and "LRPAttn default" in printed.out
    assert (out / "heatmaps.png").stat().st_size > 10_000


def test_command_line_tunes_a_saved_hf_model_on_a_csv(saved_bert, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["run", "--model", f"hf:{saved_bert}", "--data", str(saved_bert / "texts.csv"), "--n-trials", "4",
                 "--n-samples", "6", "--storage", f"sqlite:///{tmp_path / 'hf.db'}", "--out", str(out),
                 "--no-progress", "--no-panel"])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "metric abpc (baseline=mask" in printed.err
    best = json.loads((out / "best.json").read_text())
    assert "LRPAttn" in json.dumps(best)


@pytest.mark.parametrize(
    "model, data, message",
    [
        ("hf:{tmp}/missing", None, "no Hugging Face model at"),
        ("hf:{tmp}/folder", None, "no Hugging Face model at"),  # a folder that is not a model
        ("hf:{bert}", "{bert}/missing.csv", "does not exist"),
        ("hf:{bert}", "{tmp}/labels.csv", "neither class indices nor names"),
        ("hf:{bert}", "{tmp}/unlabelled.csv", "has no label field"),
        ("hf:{bert}", "{tmp}/empty.txt", "holds no text"),
        ("hf:{bert}", "{tmp}/latin1.txt", "is not UTF-8 text"),
        ("hf:{bert}", None, "has no data of its own"),
        ("hf:{bare}", "{tmp}/sentences.txt", "has no tokenizer: save one beside the model"),
    ],
)
def test_command_line_refuses_bad_hf_input_in_one_line(saved_bert, tmp_path, capsys, model, data, message) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("not a model")
    (tmp_path / "labels.csv").write_text("text,label\nthe cat,happy\n")
    (tmp_path / "unlabelled.csv").write_text("text,mood\nthe cat,1\n")
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "latin1.txt").write_bytes("the caf\xe9 film".encode("latin-1"))
    (tmp_path / "sentences.txt").write_text("the cat sat\n")
    bare = tmp_path / "bare"  # the model without its tokenizer
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((saved_bert / name).read_bytes())
    names = {"tmp": tmp_path, "bert": saved_bert, "bare": bare}
    argv = ["run", "--model", model.format(**names), "--out", str(tmp_path / "out"),
            "--storage", f"sqlite:///{tmp_path / 'x.db'}", "--no-progress"]  # fmt: skip
    if data is not None:
        argv += ["--data", data.format(**names)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    assert not (tmp_path / "x.db").exists() and not (tmp_path / "out").exists()


def test_an_unsupported_hf_family_is_refused_by_the_preset(tmp_path) -> None:
    config = transformers.OPTConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, ffn_dim=64, num_attention_heads=4,
        word_embed_proj_dim=32, architectures=["OPTForCausalLM"],
    )  # fmt: skip
    config.save_pretrained(tmp_path)
    from studies import model_preset

    with pytest.raises(PresetError, match="'opt' model; the AttnLRP rules cover"):
        model_preset(f"hf:{tmp_path}")


def test_without_the_hf_extra_an_hf_model_is_one_line(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if transformers were not installed
    for model in ("hf:./anything", "text-evidence"):
        argv = ["run", "--model", model, "--storage", f"sqlite:///{tmp_path / 'x.db'}", "--out", str(tmp_path / "o")]
        assert main(argv) == 2
        assert 'need the hf extra: pip install -e ".[hf]"' in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()


def test_command_line_tunes_a_saved_hf_image_classifier(tmp_path, capsys) -> None:
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, num_labels=3, architectures=["ViTForImageClassification"], **SHAPE
    )
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    processor = {"size": {"height": 32, "width": 32}, "image_mean": [0.4, 0.4, 0.4], "image_std": [0.2, 0.2, 0.2]}
    (tmp_path / "vit" / "preprocessor_config.json").write_text(json.dumps(processor))
    from studies import model_preset

    preset = model_preset(f"hf:{tmp_path / 'vit'}")
    images, _ = preset.load_data(n_samples=2)  # the sample photographs, as the processor says
    assert images.shape == (2, 3, 32, 32)
    assert torch.allclose(preset.low, torch.full((1, 3, 1, 1), -2.0))  # (0 - 0.4) / 0.2
    out = tmp_path / "out"
    storage = f"sqlite:///{tmp_path / 'vit.db'}"
    code = main(["run", "--model", f"hf:{tmp_path / 'vit'}", "--n-trials", "3", "--n-samples", "3", "--out", str(out),
                 "--storage", storage, "--no-progress", "--no-panel", "--no-baselines"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "LRPAttn" in (out / "best.json").read_text()


def test_texts_are_cut_at_the_models_positions(saved_bert, tmp_path) -> None:
    from studies import get_preset, model_preset

    long_text = " ".join(["the film was good"] * 40)  # 160 words
    (tmp_path / "long.txt").write_text(long_text + "\nthe cat\n")
    ids, _ = get_preset("text-evidence").load_data(tmp_path / "long.txt")
    assert ids.shape[1] == 32  # the known-answer BERT has 32 positions
    config = json.loads((saved_bert / "config.json").read_text())
    ids, _ = model_preset(f"hf:{saved_bert}").load_data(tmp_path / "long.txt")
    assert ids.shape[1] == min(128, config["max_position_embeddings"]) and (ids[1] < 0).any()


def test_weights_none_draws_the_model_from_its_config_with_the_seed(saved_bert) -> None:
    from studies import model_preset

    saved = model_preset(f"hf:{saved_bert}").load_model()
    random = model_preset(f"hf:{saved_bert}", weights="none")
    first, again, other = random.load_model(seed=1), random.load_model(seed=1), random.load_model(seed=2)

    def weight(model):
        return model.model.bert.encoder.layer[0].attention.self.query.weight

    assert torch.equal(weight(first), weight(again))
    assert not torch.equal(weight(first), weight(other)) and not torch.equal(weight(first), weight(saved))
    assert random.name.endswith("@none")
