"""Does tuning AttnLRP per layer group pay on held-out text? The tuned configuration against AttnLRP's default.

Two studies with ``tune()`` over ``LRPAttn`` (epsilon, the attention rule, a gamma per layer group), objective AbPC
over tokens with the model's default removed-token baseline, on ``--n-samples`` sentences; then on ``--n-holdout``
other sentences the best configuration against AttnLRP's default: the mean paired difference of AbPC with a 95%
bootstrap interval and the Wilcoxon p (``TuneResult.comparisons()``), and on the known-answer task the relevance mass
on the evidence words the same way (``TuneResult.known_evidence()``); there also a study tuned for the relevance mass
itself, which says how much of the evidence a faithfulness objective leaves to gain:

- the known-answer task (the ``text-evidence`` preset: a tiny BERT trained on sentences whose label is decided by
  planted evidence words; baseline: its mask token);
- a random-weight LLaMA-style causal language model (4 layers, hidden 64, vocabulary 256, Hugging Face's default
  initialisation, seed 0) explaining its predicted next token on random token sequences of 24 (baseline: zero, as
  the model comes without a tokenizer).

    python benchmarks/hf_tuning.py --save benchmarks/RESULTS-hf_tuning.json
    python benchmarks/hf_tuning.py --n-trials 8 --n-samples 16 --n-holdout 32      # a smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import optuna
import torch
import transformers
from _timing import machine, table

from explainers.attnlrp import TextClassifier
from studies import get_preset
from tuner import Budget, Objective, Report, Search, tune


def known_answer_data(n: int) -> tuple[torch.nn.Module, tuple]:
    preset = get_preset("text-evidence")
    return preset.load_model(), preset.load_data(n_samples=n)


def random_llama_data(n: int) -> tuple[torch.nn.Module, tuple]:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2,
    )  # fmt: skip
    model = TextClassifier(transformers.LlamaForCausalLM(config).eval())
    ids = torch.randint(0, 256, (n, 24), generator=torch.Generator().manual_seed(1))
    return model, (ids,)


#: the columns of TuneResult.comparisons() / known_evidence() kept: the two means, their difference, its CI, p
COLUMNS = ("best", "other", "diff", "CI low", "CI high", "p")
#: task -> (its model and data, the objective's metric)
TASKS = {
    "known answer (text-evidence BERT)": (known_answer_data, "abpc"),
    "known answer, tuned for relevance mass": (known_answer_data, "relevance_mass"),
    "random LLaMA-style": (random_llama_data, "abpc"),
}


def study(model: torch.nn.Module, data: tuple, metric: str, args: argparse.Namespace) -> dict:
    began = time.perf_counter()
    result = tune(
        None,
        model,
        data if len(data) > 1 else data[0],
        objective=Objective(metric),
        budget=Budget(n_trials=args.n_trials, n_samples=args.n_samples, n_holdout=args.n_holdout),
        search=Search(seed=0),
        report=Report(panel=False, n_heatmaps=0),
    )
    row = result.comparisons().iloc[0]
    record = {
        "baseline": result.study.user_attrs["baseline"],
        "best": result.best_explainer.describe(),
        str(row["metric"]): {key: float(row[key]) for key in COLUMNS} | {"n": int(row["n"])},
        "seconds": time.perf_counter() - began,
    }
    known = result.known_evidence()
    if len(known):
        mass = known.iloc[0]
        record.setdefault("RelevanceMassAccuracy", {key: float(mass[key]) for key in COLUMNS})
    return record


def report(records: dict) -> str:
    rows = []
    for task, record in records["tasks"].items():
        for measure in ("AbPC", "RelevanceMassAccuracy"):
            if measure in record:
                r = record[measure]
                interval = f"{r['diff']:+.4f} [{r['CI low']:+.4f}, {r['CI high']:+.4f}]"
                rows.append([task, measure, f"{r['other']:.4f}", f"{r['best']:.4f}", interval, f"{r['p']:.2g}"])
    lines = [f"machine: {records['machine']}", f"{records['settings']}", ""]
    lines.append(table(["task", "held-out measure", "AttnLRP default", "tuned", "tuned - default [95% CI]", "p"], rows))
    lines += [""] + [f"- {task}: best {r['best']}; baseline {r['baseline']}" for task, r in records["tasks"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-trials", type=int, default=40)
    parser.add_argument("--n-samples", type=int, default=64)
    parser.add_argument("--n-holdout", type=int, default=128)
    parser.add_argument("--save")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    records = {
        "machine": machine(),
        "settings": f"{args.n_trials} trials, {args.n_samples} samples tuned on, {args.n_holdout} held out",
        "tasks": {},
    }
    for task, (make, metric) in TASKS.items():
        model, data = make(args.n_samples + args.n_holdout)
        records["tasks"][task] = study(model, data, metric, args)
    if args.save:
        Path(args.save).write_text(json.dumps(records, indent=2) + "\n")
    print(report(records))


if __name__ == "__main__":
    main()
