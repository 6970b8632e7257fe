"""Held-out AbPC of the default configuration, the best single-variant configuration and the layer-group search.

On the embedded default (the digits ResNet), with the same trial budget for both searches and three seeds,
each configuration is chosen on the tuning samples and scored on held-out samples the study never saw.

    python benchmarks/search.py [--n-trials 30] [--n-samples 32] [--seeds 0 1 2]
"""

import argparse
import statistics
import time

import optuna

import studies
from explainers import LRPEpsilonGammaBox, LRPLayerwise
from tuner import ALL_VARIANTS, Budget, Report, Search, tune


def held_out(result, explainer) -> float:
    return result.held_out_scores(explainer).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--n-samples", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    preset = studies.get_preset("digits")
    model = preset.load_model()
    inputs, labels = preset.load_data(n_samples=2 * args.n_samples)
    bounds = {"low": preset.low, "high": preset.high}
    budget = Budget(n_trials=args.n_trials, n_samples=args.n_samples)
    common = dict(budget=budget, explainer_kwargs=bounds, report=Report(show_progress_bar=False))

    rows = {
        "default (EpsilonGammaBox, zennit's recommendation)": [],
        "best of the four defaults": [],
        "best single-variant configuration": [],
        "layer-group search": [],
    }
    tuning = {key: [] for key in rows}
    started = time.perf_counter()
    for seed in args.seeds:
        single = tune(None, model, (inputs, labels), search=Search(seed=seed), **common)
        layered = tune(LRPLayerwise, model, (inputs, labels), search=Search(seed=seed), **common)
        defaults = {
            cls.__name__: cls(model, **({**bounds} if cls is LRPEpsilonGammaBox else {})) for cls in ALL_VARIANTS
        }
        best_default = max(defaults.values(), key=lambda e: single.scores(e).mean().item())
        chosen = {
            "default (EpsilonGammaBox, zennit's recommendation)": defaults["LRPEpsilonGammaBox"],
            "best of the four defaults": best_default,
            "best single-variant configuration": single.best_explainer,
            "layer-group search": layered.best_explainer,
        }
        for key, explainer in chosen.items():
            rows[key].append(held_out(single, explainer))  # both studies hold out the same samples (same seed)
            tuning[key].append(single.scores(explainer).mean().item())
        print(f"seed {seed}: layer-group best: {'; '.join(layered.best_explainer.describe().splitlines())}")

    print(
        f"\nheld-out AbPC (higher is better), {args.n_trials} trials per search, {args.n_samples} tuning and "
        f"{args.n_samples} held-out digits, seeds {args.seeds}; {time.perf_counter() - started:.0f} s in all\n"
    )
    seeds = " | ".join(f"seed {seed}" for seed in args.seeds)
    print(f"| configuration | {seeds} | mean held-out | mean tuning |")
    print("|---|" + "---|" * (len(args.seeds) + 2))
    for key, values in rows.items():
        cells = " | ".join(f"{v:.4f}" for v in values)
        print(f"| {key} | {cells} | {statistics.mean(values):.4f} | {statistics.mean(tuning[key]):.4f} |")


if __name__ == "__main__":
    main()
