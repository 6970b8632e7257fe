"""How many subset draws FaithfulnessCorrelation averages by default (``N_REPEATS``).

On the embedded digits preset (its trained model, the first 64 held-out digits, their labels as targets), the
attributions of the four LRP variants' defaults are scored by FaithfulnessCorrelation (100 subsets per draw,
zero and blur baselines) under ``--n-seeds`` subset seeds that share no draw; for each ``n_repeats`` the table
gives the largest spread (max - min over the seeds) of the 64-sample mean, over the variants and baselines. The
default is the smallest n_repeats whose spread is below 0.01. ``--shared`` measures Quantus's definition (one
draw of subsets for the whole batch) instead of the default independent subsets per sample.

    python benchmarks/fc_repeats.py --n-seeds 8
    python benchmarks/fc_repeats.py --n-seeds 8 --shared
"""

from __future__ import annotations

import argparse

import torch

import studies
from explainers import DEFAULT_EXPLAINERS
from metrics import FaithfulnessCorrelation


def spreads(
    n_samples: int,
    n_seeds: int,
    repeats: list[int],
    shared: bool = False,
    baselines: tuple[str, ...] = ("zero", "blur"),
    explainers: tuple[str, ...] = (),
) -> dict[int, float]:
    preset = studies.get_preset("digits")
    inputs, labels = preset.load_data(None, n_samples)
    model = preset.load_model(None)
    attributions = [
        cls(
            model, **{k: v for k, v in {"low": preset.low, "high": preset.high}.items() if k in cls.accepted_kwargs()}
        ).attribute(inputs, labels)
        for cls in DEFAULT_EXPLAINERS
        if not explainers or cls.__name__ in explainers
    ]
    worst = {}
    for n_repeats in repeats:
        spread = 0.0
        for baseline in baselines:
            for relevance in attributions:
                means = [
                    float(
                        FaithfulnessCorrelation(
                            model,
                            n_repeats=n_repeats,
                            seed=1000 * k,
                            baseline=baseline,
                            blur_sigma=2.0,
                            batch_size=512,
                            shared_subsets=shared,
                        )(inputs, labels, relevance).mean()
                    )
                    for k in range(n_seeds)
                ]
                spread = max(spread, max(means) - min(means))
        worst[n_repeats] = spread
        print(
            f"n_repeats={n_repeats}: largest spread of the {n_samples}-sample mean over {n_seeds} seeds = {spread:.4f}"
        )
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=64)
    parser.add_argument("--n-seeds", type=int, default=8)
    parser.add_argument("--repeats", default="1,2,4,8")
    parser.add_argument("--baselines", default="zero,blur", help="comma-separated (blur: sigma 2, the preset's)")
    parser.add_argument("--explainers", default="", help="comma-separated class names (default: the four variants)")
    parser.add_argument("--shared", action="store_true", help="one draw of subsets per batch (Quantus)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("subsets:", "shared by the batch (Quantus)" if args.shared else "per sample")
    spreads(
        args.n_samples,
        args.n_seeds,
        [int(r) for r in args.repeats.split(",")],
        args.shared,
        tuple(args.baselines.split(",")),
        tuple(name for name in args.explainers.split(",") if name),
    )


if __name__ == "__main__":
    main()
