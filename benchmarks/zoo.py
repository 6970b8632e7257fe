"""Coverage of torchvision's classifiers: does each explainer conserve relevance, and what does it cost?

For every classification architecture in ``torchvision.models`` (random weights): BatchNorm statistics calibrated
on the bundled sample photographs, every bias and BatchNorm shift zeroed, float64, one-hot seed; each cell is the
largest |sum of input relevance (+ relevance absorbed by a class token or position embedding) - 1| over the
samples, "refused" when the explainer refuses the model (UnsupportedModelError), or the error. Then, in float32 on
the untouched model, the median seconds of one attribution divided by the median seconds of one gradient
(forward + backward to the input) of the same batch, measured side by side. zennit's own EpsilonPlus and
EpsilonGammaBox composites on ResNet-50 are the reference rows (``--reference``).

    python benchmarks/zoo.py                          # every architecture, writes the table into README.md
    python benchmarks/zoo.py --names resnet50 vit_b_16 --no-readme
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch
import torchvision
from _timing import machine, median, table, timed
from torch import nn

from explainers import (
    LRPEpsilonAlpha2Beta1,
    LRPEpsilonGammaBox,
    LRPEpsilonPlus,
    LRPLayerwise,
    LRPUniformEpsilon,
    UnsupportedModelError,
    conservation_model,
    relevance_sums,
)
from studies._images import sample_photos
from studies._torchvision import random_model

TINY = {"epsilon": 1e-12, "stabilizer": 1e-12, "seed": "one_hot"}  # the one-hot seed: relevance sums to 1
EXPLAINERS = {
    "UniformEpsilon": lambda m: LRPUniformEpsilon(m, **TINY),
    "EpsilonPlus": lambda m: LRPEpsilonPlus(m, **TINY),
    "EpsilonGammaBox": lambda m: LRPEpsilonGammaBox(m, low=-3.0, high=3.0, **TINY),
    "EpsilonAlpha2Beta1": lambda m: LRPEpsilonAlpha2Beta1(m, **TINY),
    "Layerwise": lambda m: _tiny_epsilons(LRPLayerwise(m, low=-3.0, high=3.0)),
}
TIMED = ("EpsilonPlus", "EpsilonGammaBox")
README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- zoo:begin -->", "<!-- zoo:end -->"


def _tiny_epsilons(explainer: LRPLayerwise) -> LRPLayerwise:
    """The default layer-group rules with every epsilon and the stabilizer negligible."""
    tiny = {name: 1e-12 for name in explainer.get_tunables() if name.endswith("epsilon")}
    return explainer.set_kwargs(stabilizer=1e-12, seed="one_hot", **tiny)


def input_size(name: str) -> int:
    """The smallest input the architecture takes comfortably (its stride and windows), to keep the run short."""
    if name.startswith("maxvit"):
        return 224  # block and grid partitions of 7 at every stage
    if name.startswith("inception"):
        return 96
    if name.startswith("vit_h_14"):
        return 56
    return 64


def build(name: str, size: int) -> nn.Module:
    """``name`` with the random weights of ``--weights none`` (seed 0), at ``size`` where the model fixes it."""
    kwargs: dict = {"image_size": size} if name.startswith("vit") else {}
    if name in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=True)
    return random_model(name, seed=0, **kwargs).eval()


def photos(size: int, n: int) -> torch.Tensor:
    """The bundled photographs, resized and normalised as ImageNet models expect."""
    preprocess = torchvision.transforms.Compose([
        torchvision.transforms.Resize(size), torchvision.transforms.CenterCrop(size),
        torchvision.transforms.ToTensor(),
        torchvision.transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    images = [preprocess(photo) for photo in sample_photos()]
    return torch.stack((images * n)[:n])


def conservation(model: nn.Module, images: torch.Tensor, n_samples: int) -> dict[str, str]:
    """Explainer -> the largest |sum - 1| over ``n_samples`` samples, 'refused', or the error."""
    prepared = conservation_model(model, images)
    inputs = images[:n_samples].double()
    with torch.no_grad():
        targets = prepared(inputs).argmax(1)
    cells = {}
    for label, make in EXPLAINERS.items():
        try:
            explainer = make(prepared)
            relevance = explainer.attribute(inputs, targets)
            total = relevance_sums(relevance)
            for absorbed in (getattr(explainer, "last_absorbed", None) or {}).values():
                total = total + absorbed
            cells[label] = f"{float((total - 1).abs().max()):.0e}"
        except UnsupportedModelError:
            cells[label] = "refused"
        except Exception as exc:  # noqa: BLE001 - a benchmark reports every failure in its cell
            cells[label] = f"error: {type(exc).__name__}"
    return cells


def timing(model: nn.Module, images: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds of one gradient and of one attribution per timed explainer, interleaved."""
    targets = torch.zeros(images.shape[0], dtype=torch.long)

    def gradient() -> None:
        x = images.clone().requires_grad_(True)
        model(x)[torch.arange(len(x)), targets].sum().backward()

    explainers = {label: EXPLAINERS[label](model) for label in TIMED}
    seconds: dict[str, list[float]] = {"gradient": [], **{label: [] for label in TIMED}}
    for label, explainer in explainers.items():
        explainer.attribute(images[:1], targets[:1])  # warm-up (and the one-off class-count check)
    for _ in range(repeats):
        seconds["gradient"].append(timed(gradient)[0])
        for label, explainer in explainers.items():
            seconds[label].append(timed(lambda e=explainer: e.attribute(images, targets))[0])
    return {label: median(values) for label, values in seconds.items()}


def zennit_reference(repeats: int, batch: int, size: int) -> dict[str, float]:
    """zennit's own composites on ResNet-50, relative to its gradient: the speed the issue measures against."""
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonGammaBox, EpsilonPlus
    from zennit.torchvision import ResNetCanonizer

    model = build("resnet50", size)
    images = photos(size, batch)
    targets = torch.zeros(batch, dtype=torch.long)
    composites = {"EpsilonPlus": lambda: EpsilonPlus(canonizers=[ResNetCanonizer()]),
                  "EpsilonGammaBox": lambda: EpsilonGammaBox(-3.0, 3.0, canonizers=[ResNetCanonizer()])}

    def gradient() -> None:
        x = images.clone().requires_grad_(True)
        model(x)[torch.arange(batch), targets].sum().backward()

    def attribute(composite) -> None:
        with Gradient(model, composite()) as attributor:
            attributor(images, torch.eye(1000)[targets])

    seconds: dict[str, list[float]] = {"gradient": [], "EpsilonPlus": [], "EpsilonGammaBox": []}
    for _ in range(repeats):
        seconds["gradient"].append(timed(gradient)[0])
        for label, composite in composites.items():
            seconds[label].append(timed(lambda c=composite: attribute(c))[0])
    return {label: median(values) for label, values in seconds.items()}


def _conserves(cell: str) -> bool:
    try:
        return float(cell) < 1e-4
    except ValueError:
        return False


def classification_models() -> list[str]:
    return torchvision.models.list_models(module=torchvision.models)


def measure(name: str, args: argparse.Namespace) -> dict:
    """One architecture's record: input size, conservation cells, median seconds."""
    size = input_size(name)
    model = build(name, size)
    images = photos(size, max(4, args.batch))
    cells = conservation(model, images, args.samples)
    seconds = {} if args.no_timing else timing(model, images[: args.batch], args.repeats)
    return {"name": name, "size": size, "cells": cells, "seconds": seconds}


def render(records: list[dict], reference: dict[str, float] | None, args: argparse.Namespace) -> str:
    """The Markdown table, its one-line summary, the reference sentence and the machine."""
    rows = []
    for record in records:
        seconds = record["seconds"]
        ratios = [f"{seconds[label] / seconds['gradient']:.1f}×" if seconds else "" for label in TIMED]
        rows.append([record["name"], record["size"], *record["cells"].values(), *ratios,
                     f"{seconds['EpsilonGammaBox']:.2f}" if seconds else ""])
    header = ["architecture", "px", *EXPLAINERS, *(f"{label} ÷ gradient" for label in TIMED), "EpsilonGammaBox s"]
    conserving = sum(all(_conserves(cell) for cell in record["cells"].values()) for record in records)
    refused = sum(any(cell == "refused" for cell in record["cells"].values()) for record in records)
    text = (f"{conserving} of {len(records)} architectures conserve (|sum - 1| < 1e-4) under all five explainers; "
            f"{refused} refused; {len(records) - conserving - refused} wrong.\n\n{table(header, rows)}")
    if reference:
        text += (f"\n\nReference, zennit's own composites on resnet50 at {args.reference_size} px, batch {args.batch}: "
                 f"EpsilonPlus {reference['EpsilonPlus'] / reference['gradient']:.1f}× and EpsilonGammaBox "
                 f"{reference['EpsilonGammaBox'] / reference['gradient']:.1f}× its gradient.")
    missing = [name for name in classification_models() if name not in {r["name"] for r in records}]
    if missing:
        text += f"\n\nNot measured in this run ({len(missing)}): {', '.join(missing)}."
    return f"{text}\n\nMeasured on: {machine()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", nargs="*", help="architectures (default: every torchvision classifier)")
    parser.add_argument("--samples", type=int, default=2, help="samples checked for conservation (default 2)")
    parser.add_argument("--batch", type=int, default=4, help="batch size of the timing (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repetitions, medians reported (default 3)")
    parser.add_argument("--no-timing", action="store_true", help="conservation only")
    parser.add_argument("--reference-size", type=int, default=224, help="input size of the zennit reference rows")
    parser.add_argument("--save", type=Path, help="append one JSON line per architecture to this file")
    parser.add_argument("--from-saved", type=Path, help="render the table from the JSON lines of an earlier --save")
    parser.add_argument("--no-readme", action="store_true", help="print the table only")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(machine(), flush=True)
    if args.from_saved:
        records = [json.loads(line) for line in args.from_saved.read_text().splitlines() if line.strip()]
    else:
        records = []
        for name in args.names or classification_models():
            records.append(measure(name, args))
            print(json.dumps(records[-1]), flush=True)
            if args.save:
                with args.save.open("a") as handle:
                    handle.write(json.dumps(records[-1]) + "\n")
    reference = None if args.no_timing else zennit_reference(args.repeats, args.batch, args.reference_size)
    text = render(records, reference, args)
    print(text)
    if not args.no_readme:
        readme = README.read_text()
        if BEGIN in readme and END in readme:
            head, rest = readme.split(BEGIN, 1)
            README.write_text(f"{head}{BEGIN}\n{text}\n{END}{rest.split(END, 1)[1]}")
            print(f"wrote the table into {README}")


if __name__ == "__main__":
    main()
