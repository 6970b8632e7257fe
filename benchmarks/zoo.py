"""Coverage of torchvision's classifiers: does each explainer conserve relevance, and what does it cost?

For every classification architecture in ``torchvision.models`` (random weights): BatchNorm statistics calibrated
on the bundled sample photographs, every bias and BatchNorm shift zeroed, float64, one-hot seed; each cell is the
largest |sum of input relevance (+ relevance absorbed by a class token or position embedding) - 1| over the
samples, "refused" when the explainer refuses the model (UnsupportedModelError), or the error. Then, in float32 on
the untouched model, the median seconds of one attribution divided by the median seconds of one gradient
(forward + backward to the input) of the same batch, the repetitions interleaved. On ResNet-50, zennit's own
EpsilonPlus and EpsilonGammaBox composites run in the same loop: the reference the issue measures against.

    python benchmarks/zoo.py                          # every architecture, writes the table into docs/models.md
    python benchmarks/zoo.py --names resnet50 vit_b_16 --no-readme
    python benchmarks/zoo.py --names resnet50 --no-conservation --timing-size 224 --save benchmarks/RESULTS-zoo.jsonl
    python benchmarks/zoo.py --from-saved benchmarks/RESULTS-zoo.jsonl   # the table from the records (latest wins)
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
from studies.loading._images import sample_photos
from studies.presets._torchvision import random_model

TINY = {"epsilon": 1e-12, "stabilizer": 1e-12, "seed": "one_hot"}  # the one-hot seed: relevance sums to 1
EXPLAINERS = {
    "UniformEpsilon": lambda m: LRPUniformEpsilon(m, **TINY),
    "EpsilonPlus": lambda m: LRPEpsilonPlus(m, **TINY),
    "EpsilonGammaBox": lambda m: LRPEpsilonGammaBox(m, low=-3.0, high=3.0, **TINY),
    "EpsilonAlpha2Beta1": lambda m: LRPEpsilonAlpha2Beta1(m, **TINY),
    "Layerwise": lambda m: _tiny_epsilons(LRPLayerwise(m, low=-3.0, high=3.0)),
}
TIMED = ("EpsilonPlus", "EpsilonGammaBox")
README = Path(__file__).resolve().parent.parent / "docs" / "models.md"
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
    preprocess = torchvision.transforms.Compose(
        [
            torchvision.transforms.Resize(size),
            torchvision.transforms.CenterCrop(size),
            torchvision.transforms.ToTensor(),
            torchvision.transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
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


def timing(model: nn.Module, images: torch.Tensor, repeats: int, resnet: bool = False) -> dict[str, float]:
    """Median seconds of one gradient (to the input only, as an attribution) and of one attribution per timed
    explainer, the repetitions interleaved; with ``resnet``, zennit's own composites too (``zennit <variant>``)."""
    targets = torch.zeros(images.shape[0], dtype=torch.long)

    def gradient() -> None:
        x = images.clone().requires_grad_(True)
        torch.autograd.grad(model(x)[torch.arange(len(x)), targets].sum(), x)

    runs = {label: (lambda e=EXPLAINERS[label](model): e.attribute(images, targets)) for label in TIMED}
    if resnet:
        runs.update(zennit_runs(model, images, targets))
    seconds: dict[str, list[float]] = {"gradient": [], **{label: [] for label in runs}}
    for run in runs.values():
        run()  # warm-up (and the explainers' one-off class-count check)
    for _ in range(repeats):
        seconds["gradient"].append(timed(gradient)[0])
        for label, run in runs.items():
            seconds[label].append(timed(run)[0])
    return {label: median(values) for label, values in seconds.items()}


def zennit_runs(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> dict:
    """zennit's own EpsilonPlus and EpsilonGammaBox composites on a ResNet (its ResNet canonizer): the reference."""
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonGammaBox, EpsilonPlus
    from zennit.torchvision import ResNetCanonizer

    composites = {
        "zennit EpsilonPlus": lambda: EpsilonPlus(canonizers=[ResNetCanonizer()]),
        "zennit EpsilonGammaBox": lambda: EpsilonGammaBox(-3.0, 3.0, canonizers=[ResNetCanonizer()]),
    }

    def attribute(composite) -> None:
        with Gradient(model, composite()) as attributor:
            attributor(images, torch.eye(1000)[targets])

    return {label: (lambda c=composite: attribute(c)) for label, composite in composites.items()}


def _conserves(cell: str) -> bool:
    try:
        return float(cell) < 1e-4
    except ValueError:
        return False


def classification_models() -> list[str]:
    return torchvision.models.list_models(module=torchvision.models)


def measure(name: str, args: argparse.Namespace) -> dict:
    """One architecture's record: input size, conservation cells, median seconds (and what they were timed on)."""
    size = input_size(name)
    record: dict = {"name": name, "size": size, "cells": {}, "seconds": {}}
    if not args.no_conservation:
        record["cells"] = conservation(build(name, size), photos(size, max(4, args.samples)), args.samples)
    if not args.no_timing:
        timing_size = args.timing_size or size
        model = build(name, timing_size)
        record["seconds"] = timing(model, photos(timing_size, args.batch), args.repeats, resnet=name == "resnet50")
        record["timing"] = {"size": timing_size, "batch": args.batch, "repeats": args.repeats, "machine": machine()}
    return record


def merged(records: list[dict]) -> list[dict]:
    """One record per architecture, in first-seen order: the latest conservation cells and the latest timing."""
    by_name: dict[str, dict] = {}
    for record in records:
        current = by_name.setdefault(
            record["name"], {"name": record["name"], "size": record["size"], "cells": {}, "seconds": {}}
        )
        if record.get("cells"):
            current["cells"], current["size"] = record["cells"], record["size"]
        if record.get("seconds"):
            current["seconds"], current["timing"] = record["seconds"], record.get("timing")
    return list(by_name.values())


def _unmeasured(record: dict) -> bool:
    """A record saying why an architecture could not be measured (e.g. ``"not measured: memory"`` in its cells)."""
    return any(str(cell).startswith("not measured") for cell in record["cells"].values())


def _timed_on(record: dict) -> str:
    timing = record.get("timing") or {}
    return f"{timing['batch']}×{timing['size']}²" if timing else ""


def render(records: list[dict]) -> str:
    """The Markdown table, its one-line summary, the reference sentence and the machine."""
    rows = []
    for record in records:
        seconds = record["seconds"]
        ratios = [f"{seconds[label] / seconds['gradient']:.1f}×" if seconds else "" for label in TIMED]
        cells = [record["cells"].get(label, "not measured") for label in EXPLAINERS]
        rows.append(
            [
                record["name"],
                record["size"],
                *cells,
                _timed_on(record),
                *ratios,
                f"{seconds['EpsilonGammaBox']:.2f}" if seconds else "",
            ]
        )
    header = [
        "architecture",
        "px",
        *EXPLAINERS,
        "timed on",
        *(f"{label} ÷ gradient" for label in TIMED),
        "EpsilonGammaBox s",
    ]
    measured = [record for record in records if record["cells"] and not _unmeasured(record)]
    conserving = sum(all(_conserves(cell) for cell in record["cells"].values()) for record in measured)
    refused = sum(any(cell == "refused" for cell in record["cells"].values()) for record in measured)
    unmeasured = [record["name"] for record in records if _unmeasured(record)]
    text = (
        f"{conserving} of {len(measured)} architectures conserve (|sum - 1| < 1e-4) under all five explainers; "
        f"{refused} refused; {len(measured) - conserving - refused} wrong"
        + (f"; not measured: {', '.join(unmeasured)}" if unmeasured else "")
        + f".\n\n{table(header, rows)}"
    )
    reference = next((r for r in records if r["name"] == "resnet50" and "zennit EpsilonPlus" in r["seconds"]), None)
    if reference:
        seconds = reference["seconds"]
        text += (
            f"\n\nReference, measured in the same loop on resnet50 ({_timed_on(reference)}): zennit's own "
            f"composites take {seconds['zennit EpsilonPlus'] / seconds['gradient']:.1f}× (EpsilonPlus) and "
            f"{seconds['zennit EpsilonGammaBox'] / seconds['gradient']:.1f}× (EpsilonGammaBox) its gradient; "
            f"timed on {reference['timing']['machine']}, medians of {reference['timing']['repeats']} repetitions."
        )
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
    parser.add_argument("--no-conservation", action="store_true", help="timing only")
    parser.add_argument("--timing-size", type=int, help="input size of the timing (default: the conservation size)")
    parser.add_argument("--save", type=Path, help="append one JSON line per architecture to this file")
    parser.add_argument("--from-saved", type=Path, help="render the table from the JSON lines of an earlier --save")
    parser.add_argument("--no-readme", action="store_true", help="print the table only")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(machine(), flush=True)
    if args.no_timing and args.no_conservation:
        parser.error("--no-timing and --no-conservation leave nothing to measure")
    if args.from_saved:
        lines = args.from_saved.read_text().splitlines()
        records = merged([json.loads(line) for line in lines if line.strip()])
    else:
        records = []
        for name in args.names or classification_models():
            records.append(measure(name, args))
            print(json.dumps(records[-1]), flush=True)
            if args.save:
                with args.save.open("a") as handle:
                    handle.write(json.dumps(records[-1]) + "\n")
    text = render(records)
    print(text)
    if not args.no_readme:
        readme = README.read_text()
        if BEGIN in readme and END in readme:
            head, rest = readme.split(BEGIN, 1)
            README.write_text(f"{head}{BEGIN}\n{text}\n{END}{rest.split(END, 1)[1]}")
            print(f"wrote the table into {README}")


if __name__ == "__main__":
    main()
