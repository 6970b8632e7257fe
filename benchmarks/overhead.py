"""What the report costs next to the trials: one ``python -m tuner run`` timed per phase.

The run is the command line's, in this process (``tuner.cli.main``), on torchvision's ResNet-50 with random weights
(``--weights none``) at 224² on an image folder made from the bundled photographs (each photograph one class, cut
into crops: the bundled eight alone leave nothing to hold out): model and data, inert checks, trials, held-out scores,
captum baselines, figures, and the rest (imports, samples, the study's creation, tables: "other"). The share
outside the trials is everything but the trials over the whole run. Defaults: 16 samples (16 held out), 20 trials;
smaller flags give a quick run.

    nice python benchmarks/overhead.py                                   # ResNet-50, 224², 16 samples, 20 trials
    nice python benchmarks/overhead.py --n-samples 4 --n-trials 4        # a quick run
    nice python benchmarks/overhead.py --no-baselines                    # without the captum rows
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

from _timing import machine

from studies.loading._images import sample_photos
from tuner import cli
from tuner.cli import command_line
from tuner.search._phases import recording

#: the crops' top-left corners, as fractions of the room the crop leaves
CROPS = ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5), (0.25, 0.25))


def image_folder(folder: Path, n_images: int) -> Path:
    """An image folder (one subfolder per photograph) of ``n_images`` crops of the bundled photographs: 70% of the
    shorter side, at the corners and the centre."""
    photos = sample_photos()
    for index in range(n_images):
        photo, crop = photos[index % len(photos)], CROPS[(index // len(photos)) % len(CROPS)]
        side = int(0.7 * min(photo.size))
        left, top = int(crop[0] * (photo.width - side)), int(crop[1] * (photo.height - side))
        target = folder / f"photo{index % len(photos)}" / f"crop{index}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        photo.crop((left, top, left + side, top + side)).save(target)
    return folder


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        data = image_folder(Path(folder) / "images", 2 * args.n_samples)  # as many held out as tuned on
        argv = command_line(
            "run",
            model=args.model,
            weights="none",
            input_size=args.input_size,
            n_trials=args.n_trials,
            n_samples=args.n_samples,
            batch_size=args.batch_size,
            explainers=args.explainers,
            data=data,
            storage=f"sqlite:///{Path(folder) / 'overhead.db'}",
            out=Path(folder) / "out",
            no_progress=True,
            no_baselines=args.no_baselines,
            no_panel=args.no_panel,
        )[3:]  # in this process: the arguments after ``python -m tuner``
        with recording(sys.stderr) as times, contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(argv)
        if code != 0:
            raise SystemExit(f"the run failed with exit code {code}")
        total = times.total()
    phases = dict(times.seconds)
    phases["other"] = max(0.0, total - sum(phases.values()))
    outside = total - phases.get("trials", 0.0)
    return {
        "argv": [a.replace(folder, "<tmp>") for a in argv],
        "phases": phases,
        "total": total,
        "outside_trials": outside,
        "share_outside": outside / total,
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--n-samples", type=int, default=16)
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--explainers", default="all")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--no-panel", action="store_true")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    result = run(args)
    print(f"{' '.join(result['argv'])}\n")
    print("| phase | seconds | share |\n|---|---:|---:|")
    for name, seconds in result["phases"].items():
        print(f"| {name} | {seconds:.1f} | {100 * seconds / result['total']:.0f}% |")
    print(f"| **total** | {result['total']:.1f} | |")
    print(
        f"\noutside the trials: {result['outside_trials']:.1f} s of {result['total']:.1f} s "
        f"({100 * result['share_outside']:.0f}%); {result['machine']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
