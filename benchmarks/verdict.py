"""Can the study's verdict be trusted? Held-out gains of tuning, split into variant choice and parameter tuning.

For each model and seed, ``tune()`` searches the four LRP variants (TPE with that seed; AbPC with the preset's
objective settings: a blur baseline) on the tuning samples. Then, on the held-out samples (never tuned on), under
the objective and under every metric of the default robustness panel (AbPC with zero, min and blur baselines,
MoRF, FaithfulnessCorrelation, IROF), it compares paired per-sample scores:

- **variant choice**: the best of the four defaults (chosen on the tuning samples) − EpsilonGammaBox's default
  (zennit's recommendation, the tool's starting point);
- **parameter tuning**: the tuned configuration − the default of its own variant;
- **tuned − best default**, and **tuned − each captum reference row**.

Each cell: the mean paired difference, its 95% percentile-bootstrap interval (10,000 resamples of the samples,
seed 0) and the paired Wilcoxon signed-rank p-value (``tuner.evidence._statistics``). Models:

- ``digits``: the embedded default (the digits ResNet), the preset's samples, batch and objective;
- ``resnet50-digits``: torchvision's ResNet-50 trained here on the digits (``benchmarks/study.py``'s
  ``digits_resnet50``: 32×32 RGB, 8 epochs, cached in ~/.cache/lrp-tuner-bench; training takes minutes on CPU).

    python benchmarks/verdict.py --quick                          # smoke test: digits, 1 seed, 4 trials
    python benchmarks/verdict.py --models digits                  # the README's digits numbers
    python benchmarks/verdict.py --models digits resnet50-digits  # both models, seeds 0 1 2

Writes the per-seed results as JSON lines (``--save``) and prints a Markdown table per model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import optuna
import torch

sys.path.insert(0, str(Path(__file__).parent))

EGB = "LRPEpsilonGammaBox"


def load_model(name: str, args) -> dict:
    """The model, its data (tuning + held-out), batch, samples and explainer kwargs."""
    import studies

    digits = studies.get_preset("digits")
    bounds = {"low": digits.low, "high": digits.high}
    if name == "digits":
        d = digits.defaults
        n = args.samples or d["n_samples"]
        x, y = digits.load_data(None, 2 * n)
        kwargs = {**bounds, "zennit_canonizers": digits.canonizers() or None}
        return dict(
            model=digits.load_model(None),
            data=(x, y),
            n_samples=n,
            batch_size=d["batch_size"],
            explainer_kwargs=kwargs,
            metric_kwargs=dict(digits.metric_kwargs),
        )
    from study import digits_resnet50

    model, x, y = digits_resnet50(args.trained_size, args.trained_epochs)
    n = args.samples or 16
    return dict(
        model=model, data=(x[: 2 * n], y[: 2 * n]), n_samples=n, batch_size=8, explainer_kwargs=bounds, metric_kwargs={}
    )


def comparisons(result) -> dict[str, tuple[str, str]]:
    """Comparison name -> (method label in the panel, method label it is compared with)."""
    from tuner.evidence._reference import CAPTUM

    labels = list(result.panel_details().samples)
    best = result.best_trial
    variant = result.space.variant_of(best.params)
    tuned = next(label for label in labels if label.startswith(variant) and ("best" in label))
    own_default = next(label for label in labels if label.startswith(f"{variant} default"))
    best_default = next(label for label in labels if label.startswith(f"{result._best_default_variant()} default"))
    egb_default = next((label for label in labels if label.startswith(f"{EGB} default")), None)
    pairs = {
        "variant choice (best default - EpsilonGammaBox default)": (best_default, egb_default),
        "parameter tuning (tuned - its variant's default)": (tuned, own_default),
        "tuned - best default": (tuned, best_default),
    }
    pairs.update({f"tuned - {name}": (tuned, name) for name in CAPTUM})
    return {name: pair for name, pair in pairs.items() if pair[1] is not None}


def run(name: str, spec: dict, seed: int, args) -> list[dict]:
    from tuner import Budget, Objective, Report, Search, tune
    from tuner.evidence._statistics import compare

    start = time.perf_counter()
    result = tune(
        None,
        spec["model"],
        spec["data"],
        objective=Objective("abpc", metric_kwargs=spec["metric_kwargs"]),
        budget=Budget(n_trials=args.trials or spec.get("n_trials", 30), n_samples=spec["n_samples"]),
        search=Search(seed=seed, batch_size=spec["batch_size"]),
        report=Report(show_progress_bar=False, n_heatmaps=0),
        explainer_kwargs=spec["explainer_kwargs"],
    )
    tuned_s = time.perf_counter() - start
    panel = result.panel_details()
    assert panel is not None, "the verdict needs held-out samples and the default panel"
    metrics = list(panel.scores.columns)
    rows = []
    for comparison, (a, b) in comparisons(result).items():
        for index, metric in enumerate(metrics):
            stats = compare(panel.samples[a][index], panel.samples[b][index])
            rows.append(dict(model=name, seed=seed, comparison=comparison, a=a, b=b, metric=metric, **asdict(stats)))
    print(
        f"{name} seed {seed}: tune {tuned_s:.0f} s, panel {panel.seconds:.0f} s on {panel.n_samples} held-out "
        f"samples; best {result.best_trial.user_attrs.get('explainer')} {result.best_params}",
        file=sys.stderr,
    )
    if panel.message:
        print(f"  {panel.message}", file=sys.stderr)
    return rows


def markdown(rows: list[dict]) -> str:
    """Per comparison and metric: the mean difference over seeds, then each seed's diff [CI] p."""
    seeds = sorted({r["seed"] for r in rows})
    out = [
        "| comparison | metric | mean diff | " + " | ".join(f"seed {s}: diff [95% CI], p" for s in seeds) + " |",
        "|---|---|---|" + "---|" * len(seeds),
    ]
    keys = list(dict.fromkeys((r["comparison"], r["metric"]) for r in rows))
    for comparison, metric in keys:
        cells = {r["seed"]: r for r in rows if (r["comparison"], r["metric"]) == (comparison, metric)}
        mean = sum(c["diff"] for c in cells.values()) / len(cells)
        text = [
            f"{c['diff']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}], {c['p']:.2g}" if (c := cells.get(s)) else ""
            for s in seeds
        ]
        out.append(f"| {comparison} | {metric} | {mean:+.3f} | " + " | ".join(text) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=["digits", "resnet50-digits"], default=["digits"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=30, help="complete trials per study (default 30)")
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        help="tuning samples (as many held out); default: the digits preset's 64, 16 for the ResNet-50",
    )
    parser.add_argument("--trained-size", type=int, default=32)
    parser.add_argument("--trained-epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke test: digits, seed 0, 4 trials, 16 samples")
    parser.add_argument("--save", help="append the rows as JSON lines to this file")
    args = parser.parse_args()
    if args.quick:
        args.models, args.seeds, args.trials, args.samples = ["digits"], [0], 4, 16
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("tuner").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    for name in args.models:
        spec = load_model(name, args)
        rows = []
        for seed in args.seeds:
            rows += run(name, spec, seed, args)
            if args.save:  # after each seed: a long run stopped early keeps what it measured
                with open(args.save, "a") as handle:
                    handle.writelines(json.dumps(row) + "\n" for row in rows if row["seed"] == seed)
        print(
            f"\n### {name}: {args.trials} trials, {spec['n_samples']} tuning and as many held-out samples, "
            f"seeds {' '.join(map(str, args.seeds))}\n"
        )
        print(markdown(rows))
    print(f"\nwall time {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
