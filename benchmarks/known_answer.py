"""A known answer: does tuning for faithfulness move relevance toward the evidence the model uses, or away from it?

On the evidence preset (scikit-learn's digits pasted at random on 32x32 noise; the evidence is the pasted box), for
each training seed and each objective baseline (AbPC with zero, blur and mean), one study with ``tune()`` over the
four LRP variants on the first ``--n-samples`` held-out canvases, then on ``--n-holdout`` other held-out canvases (of
digit images never trained on) the relevance mass (the share of positive relevance inside the box) of the best
configuration and of its variant's default, and their mean paired difference with a 95% bootstrap interval and the
Wilcoxon p (``TuneResult.known_evidence()``). Prints a Markdown table and draws the differences with their intervals.

    python benchmarks/known_answer.py                                   # 5 seeds x 3 baselines, 40 trials each
    python benchmarks/known_answer.py --seeds 0 1 --n-trials 10         # a smoke run
    python benchmarks/known_answer.py --results known_answer.json      # the table and figure of saved results
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import optuna
import torch
from _timing import machine

from studies.presets._evidence import EVIDENCE, held_out_evidence
from studies.presets._evidence_model import train_evidence_model
from tuner import Budget, Objective, Report, Search, tune

BASELINES = ("zero", "blur", "mean")


def study(model: torch.nn.Module, data: tuple, baseline: str, args: argparse.Namespace) -> dict:
    """One study on the evidence canvases; the best configuration against its default on the held-out canvases."""
    result = tune(
        None,
        model,
        data,
        objective=Objective(baseline=baseline),
        budget=Budget(n_trials=args.n_trials, n_samples=args.n_samples, n_holdout=args.n_holdout),
        search=Search(seed=0),
        report=Report(panel=False, reference_rows=False, show_progress_bar=False),
        explainer_kwargs={"low": EVIDENCE.low, "high": EVIDENCE.high},
    )
    row, best = result.known_evidence().iloc[0], result.best_trial
    return {
        "best": best.user_attrs["explainer"],
        "params": result.space.explainer_kwargs(best.params),
        "best_mass": float(row["best"]),
        "default_mass": float(row["other"]),
        "diff": float(row["diff"]),
        "ci_low": float(row["CI low"]),
        "ci_high": float(row["CI high"]),
        "p": float(row["p"]),
    }


def figure(results: list[dict], path: Path) -> None:
    """The differences (best minus its default) per baseline, one point per training seed, with their intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5), dpi=100, layout="constrained")
    seeds = sorted({r["seed"] for r in results})
    for index, baseline in enumerate(BASELINES):
        for offset, seed in enumerate(seeds):
            found = [r for r in results if r["baseline"] == baseline and r["seed"] == seed]
            if not found:
                continue
            r = found[0]
            x = index + (offset - (len(seeds) - 1) / 2) * 0.12
            error = [[r["diff"] - r["ci_low"]], [r["ci_high"] - r["diff"]]]
            label = f"training seed {seed}"
            ax.errorbar(x, r["diff"], yerr=error, fmt="o", color=f"C{offset}", capsize=3, label=label)
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set_xticks(range(len(BASELINES)), [f"AbPC, baseline={b}" for b in BASELINES])
    ax.set_ylabel("relevance mass: best − its default")
    ax.set_title("Best configuration vs its default: relevance mass on held-out canvases (95% bootstrap CI)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=9, loc="best")
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--baselines", nargs="+", default=list(BASELINES), choices=BASELINES)
    parser.add_argument("--n-trials", type=int, default=40)
    parser.add_argument("--n-samples", type=int, default=64)
    parser.add_argument("--n-holdout", type=int, default=256)
    parser.add_argument("--figure", default="docs/images/known_answer.png")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--results", help="draw the table and figure of results written by --json, without studies")
    args = parser.parse_args()
    if args.results:
        report(json.loads(Path(args.results).read_text()), args, "")
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    inputs, labels, masks = held_out_evidence()
    data = (inputs, labels, masks)
    results = []
    for seed in args.seeds:
        model, trained = train_evidence_model(seed)
        for baseline in args.baselines:
            began = time.perf_counter()
            row = {
                "seed": seed,
                "accuracy": trained["accuracy"],
                "baseline": baseline,
                **study(model, data, baseline, args),
            }
            row["seconds"] = time.perf_counter() - began
            results.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    setting = f"{args.n_trials} trials on {args.n_samples} canvases, {args.n_holdout} held out"
    report(results, args, f"{machine()}; {setting}")


def report(results: list[dict], args: argparse.Namespace, header: str) -> None:
    """The Markdown table and the figure of the results."""
    print(f"\n{header}\n")
    print("| seed | accuracy | baseline | best configuration | best | default | best − default [95% CI] | p |")
    print("|---:|---:|---|---|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['seed']} | {r['accuracy']:.3f} | {r['baseline']} | {_configuration(r)} | {r['best_mass']:.3f} | "
            f"{r['default_mass']:.3f} | {r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | {r['p']:.2g} |"
        )
    figure(results, Path(args.figure))


def _configuration(r: dict) -> str:
    """``LRPUniformEpsilon(epsilon=0.0453)``."""
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
    return f"{r['best']}({params})"


if __name__ == "__main__":
    main()
