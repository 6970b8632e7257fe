"""Side-by-side timing of our MoRF / AbPC, Quantus's PixelFlipping and the physical limit.

The physical limit of a perturbation metric is the forward passes it cannot avoid: the same
number of plain forward passes of the same images (S + 1 passes of B images for MoRF with S steps,
2 (S - 1) for AbPC). Every method is timed in the same repetition loop (side by side, interleaved),
and medians are reported. Also sweeps ``batch_size`` to pick the default.

    python benchmarks/metric_speed.py --repeats 3
    python benchmarks/metric_speed.py --quick          # a smoke run: small images, one repeat
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torchvision
from torch import nn

from metrics import AbPC, MoRF
from metrics._quantus import numpy_compat


class Counting(nn.Module):
    """Counts the forward calls of the wrapped model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += 1
        return self.model(x)


try:
    import quantus  # noqa: F401

    HAVE_QUANTUS = True
except ImportError:  # the timings of ours and of the limit still run
    HAVE_QUANTUS = False


def plain_passes(model: nn.Module, x: torch.Tensor, n: int) -> None:
    with torch.inference_mode():
        for _ in range(n):
            torch.softmax(model(x), -1)


def quantus_pixel_flipping(model: nn.Module, x, y, a, steps: int) -> None:
    """Quantus's features are single channel values: with features_in_step = H W / S (its assert
    needs a divisor of H W) an RGB image takes 3 S steps, one forward call per step and batch."""
    import quantus

    metric = quantus.PixelFlipping(
        features_in_step=a[0, 0].size // steps, perturb_baseline="black", disable_warnings=True
    )
    with numpy_compat():
        metric(
            model=model, x_batch=x, y_batch=y, a_batch=a, softmax=True, device=str(x_device(model)), batch_size=len(x)
        )


def x_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compare(model: Counting, batch: int, size: int, steps: int, repeats: int, batch_size: int) -> list[dict]:
    device = x_device(model)
    generator = torch.Generator().manual_seed(batch)
    x = torch.randn(batch, 3, size, size, generator=generator).to(device)
    y = torch.arange(batch, device=device)
    a = torch.randn(x.shape, generator=generator).to(device)
    xn, yn, an = x.cpu().numpy(), y.cpu().numpy(), a.cpu().numpy()
    methods = {
        "MoRF (ours)": lambda: MoRF(model, n_steps=steps, batch_size=batch_size)(x, y, a),
        "MoRF limit": lambda: plain_passes(model, x, steps + 1),
        "Quantus PixelFlipping": lambda: quantus_pixel_flipping(model, xn, yn, an, steps),
        "AbPC (ours)": lambda: AbPC(model, n_steps=steps, batch_size=batch_size)(x, y, a),
        "AbPC limit": lambda: plain_passes(model, x, 2 * (steps - 1)),
        "Quantus PixelFlipping x2 (MoRF+LeRF)": lambda: (
            quantus_pixel_flipping(model, xn, yn, an, steps),
            quantus_pixel_flipping(model, xn, yn, -an, steps),
        ),
    }
    if not HAVE_QUANTUS:
        methods = {name: fn for name, fn in methods.items() if "Quantus" not in name}
    times = {name: [] for name in methods}
    calls = {}
    for name, fn in methods.items():  # warm-up, and count forward calls
        model.calls = 0
        fn()
        calls[name] = model.calls
    for _ in range(repeats):
        for name, fn in methods.items():
            times[name].append(timed(fn))
    return [
        dict(batch=batch, method=name, calls=calls[name], median=statistics.median(t), times=t)
        for name, t in times.items()
    ]


def sweep_batch_size(
    model: Counting, batch: int, size: int, steps: int, repeats: int, sizes: list[int]
) -> dict[int, float]:
    device = x_device(model)
    x = torch.randn(batch, 3, size, size).to(device)
    y = torch.arange(batch, device=device)
    a = torch.randn_like(x)
    times = {bs: [] for bs in sizes}
    for bs in sizes:
        MoRF(model, n_steps=steps, batch_size=bs)(x, y, a)  # warm-up
    for _ in range(repeats):
        for bs in sizes:
            times[bs].append(timed(lambda: MoRF(model, n_steps=steps, batch_size=bs)(x, y, a)))
    return {bs: statistics.median(t) for bs, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions per method (median)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 64x64 images, one repeat")
    parser.add_argument("--steps", type=int, default=8, help="perturbation steps S")
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 8], help="numbers of images B")
    parser.add_argument("--batch-size", type=int, default=None, help="our batch_size (default: the package's)")
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="*",
        default=[4, 8, 16, 32, 72],
        help="batch sizes to sweep for MoRF on the largest B (empty: skip)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    size, repeats = (64, 1) if args.quick else (224, args.repeats)
    from metrics.perturbation import DEFAULT_BATCH_SIZE

    batch_size = args.batch_size or DEFAULT_BATCH_SIZE

    model = Counting(torchvision.models.resnet50(weights=None)).eval().to(args.device)
    print(
        f"ResNet-50 (random weights), {size}x{size}, S={args.steps}, device={args.device}, "
        f"torch threads={torch.get_num_threads()}, repeats={repeats}, our batch_size={batch_size}"
    )
    rows = [r for b in args.batches for r in compare(model, b, size, args.steps, repeats, batch_size)]
    print("\n| B | method | forward calls | median s | x limit | Quantus / ours |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        group = "AbPC" if "AbPC" in r["method"] or "x2" in r["method"] else "MoRF"
        same = {q["method"]: q["median"] for q in rows if q["batch"] == r["batch"]}
        limit = same[f"{group} limit"]
        quantus_name = "Quantus PixelFlipping" + (" x2 (MoRF+LeRF)" if group == "AbPC" else "")
        speedup = f"{same[quantus_name] / r['median']:.2f}" if "ours" in r["method"] and HAVE_QUANTUS else ""
        print(
            f"| {r['batch']} | {r['method']} | {r['calls']} | {r['median']:.3f} | "
            f"{r['median'] / limit:.2f} | {speedup} |"
        )
    if args.batch_sizes:
        b = max(args.batches)
        sweep = sweep_batch_size(model, b, size, args.steps, repeats, args.batch_sizes)
        print(f"\nMoRF batch_size sweep, B={b}, S={args.steps} ({(args.steps + 1) * b} rows):")
        print("| batch_size | median s |\n|---|---|")
        for bs, t in sweep.items():
            print(f"| {bs} | {t:.3f} |")
        print(f"fastest: batch_size={min(sweep, key=sweep.get)}")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
