"""The cost per sample of ROAD's noisy linear imputation beside the blur baseline's.

ROAD (``baseline="road"``) solves one sparse linear system per (image, mask) over the removed pixels; the blur is
one separable convolution per image, computed once per call. Both are timed per 3×224×224 image (a random mask
of 10%, 50% and 90% of the pixels, the perturbed image ready for the model), side by side in the same loop,
median of ``--repeats``.

    python benchmarks/road.py
    python benchmarks/road.py --side 64 --repeats 3      # a smoke run
"""

from __future__ import annotations

import argparse

import torch
from _timing import machine, median, spread, table, timed

from metrics.perturbation._baselines import gaussian_blur
from metrics.perturbation._road import road_impute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.5, 0.9])
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, args.side, args.side, generator=generator)
    rows = []
    for fraction in args.fractions:
        road, blur = [], []
        for _ in range(args.repeats):
            mask = torch.rand(1, args.side, args.side, generator=generator) < fraction
            seconds, _ = timed(lambda: road_impute(image, mask, generator=torch.Generator().manual_seed(0)))
            road.append(seconds)
            seconds, _ = timed(lambda: torch.where(mask[:, None], gaussian_blur(image, 5.0), image))
            blur.append(seconds)
        removed = int(fraction * args.side**2)
        rows.append(
            (
                f"{fraction:.0%} (~{removed} px)",
                f"{median(road) * 1e3:.1f}",
                spread([r * 1e3 for r in road]),
                f"{median(blur) * 1e3:.2f}",
                f"{median(road) / median(blur):.0f}×",
            )
        )
    print(machine())
    print(f"\n3×{args.side}×{args.side} images, one per call, median of {args.repeats}\n")
    print(table(("removed", "road ms/sample", "road min-max", "blur ms/sample", "road / blur"), rows))


if __name__ == "__main__":
    main()
