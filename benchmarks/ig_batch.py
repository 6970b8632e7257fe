"""IntegratedGradients' batch of interpolated inputs on this device, side by side:
``tuner.evidence._reference.ig_settings``'s choice against the accelerator budget (``IG_BUDGET``, what a CPU
used before) and one batch per input count.

captum's IntegratedGradients with the tuner's ``n_steps`` on torchvision's ResNet-50 (random weights) and
``--n-images`` random images of ``--size``²; every batch size runs once as a warm-up, then ``--repeats`` times,
interleaved; the table gives medians, the min-max of the repetitions and each median over the chosen one's.

    python benchmarks/ig_batch.py                          # 8 images of 224², 3 repetitions
    python benchmarks/ig_batch.py --size 96 --n-images 16
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from _timing import machine, median, spread, table, timed
from captum.attr import IntegratedGradients

from tuner.evidence._reference import ig_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--n-images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    images = torch.randn(args.n_images, 3, args.size, args.size)
    targets = torch.randint(0, 1000, (args.n_images,))
    chosen = ig_settings(images)
    n_steps = chosen["n_steps"]
    batches = {
        "ig_settings (this device)": chosen["internal_batch_size"],
        "accelerator budget (2^24 values)": ig_settings(images.to("meta"))["internal_batch_size"],
        "one image batch per step": args.n_images,
    }
    method = IntegratedGradients(model)

    def run(batch: int) -> None:
        method.attribute(
            images.clone().requires_grad_(True), target=targets, n_steps=n_steps, internal_batch_size=batch
        )

    seconds: dict[str, list[float]] = {name: [] for name in batches}
    for batch in batches.values():
        run(batch)  # warm-up
    for _ in range(args.repeats):
        for name, batch in batches.items():
            seconds[name].append(timed(lambda: run(batch))[0])
    base = median(seconds["ig_settings (this device)"])
    rows = [
        (
            name,
            batches[name],
            f"{median(seconds[name]):.2f}",
            spread(seconds[name]),
            f"{median(seconds[name]) / base:.2f}",
        )
        for name in batches
    ]
    print(f"IntegratedGradients, {n_steps} steps, {args.n_images} images of {args.size}², ResNet-50; {machine()}\n")
    print(table(["batch", "interpolated inputs per batch", "median s", "min-max", "÷ ig_settings"], rows))


if __name__ == "__main__":
    main()
