"""What the report costs next to the trials: one ``python -m tuner run`` timed per phase.

The run is the command line's, in this process (``tuner.cli.main``), on torchvision's ResNet-50 with random weights
(``--weights none``) at 224² on an image folder made from the bundled photographs (each photograph one class, cut
into crops: the bundled eight alone leave nothing to hold out): model and data, inert checks, trials, held-out scores,
reference rows, held-out scores, figures, robustness panel, and the rest (imports, samples, the study's creation,
tables: "other"), each in seconds and in trial-equivalents ("te": its time over the median complete trial's, which
does not depend on the machine), with the report's estimate beside its actual time. Defaults: the resnet50 preset's
(16 samples, 16 held out, batch 4), at 20 and 80 trials, the panel off and on; smaller flags give a quick run.

    nice python benchmarks/overhead.py                                          # ResNet-50, 224², 20 and 80 trials
    nice python benchmarks/overhead.py --n-samples 4 --n-trials 4 --panel on    # README's smoke run
    nice python benchmarks/overhead.py --no-baselines                           # without the captum rows
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
from tuner.search._study import median_trial_seconds

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


REPORT_PHASES = ("reference rows", "held-out scores", "figures", "robustness panel")


def run(args: argparse.Namespace, n_trials: int, panel: bool) -> dict:
    """One run of the command line, timed per phase; each phase also in trial-equivalents (its seconds over the
    median complete trial's)."""
    import optuna

    with tempfile.TemporaryDirectory() as folder:
        data = image_folder(Path(folder) / "images", 2 * args.n_samples)  # as many held out as tuned on
        storage = f"sqlite:///{Path(folder) / 'overhead.db'}"
        argv = command_line(
            "run",
            model=args.model,
            weights="none",
            input_size=args.input_size,
            n_trials=n_trials,
            n_samples=args.n_samples,
            batch_size=args.batch_size,
            explainers=args.explainers,
            data=data,
            storage=storage,
            study_name="overhead",
            out=Path(folder) / "out",
            no_progress=True,
            no_baselines=args.no_baselines,
            panel_budget=args.panel_budget if panel else 0,
        )[3:]  # in this process: the arguments after ``python -m tuner``
        with recording(sys.stderr) as times, contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(argv)
        if code != 0:
            raise SystemExit(f"the run failed with exit code {code}")
        total = times.total()
        trial = median_trial_seconds(optuna.load_study(study_name="overhead", storage=storage))
    phases = dict(times.seconds)
    phases["other"] = max(0.0, total - sum(phases.values()))
    outside = total - phases.get("trials", 0.0)
    report = sum(phases.get(name, 0.0) for name in REPORT_PHASES)
    estimate = sum(times.estimates.values())
    return {
        "argv": [a.replace(folder, "<tmp>") for a in argv],
        "n_trials": n_trials,
        "panel": panel,
        "phases": phases,
        "median_trial": trial,
        "total": total,
        "outside_trials": outside,
        "outside_trial_equivalents": (outside - phases.get("robustness panel", 0.0)) / trial,
        "share_outside": outside / total,
        "report": report,
        "report_estimate": estimate,
        "total_over_trials": total / phases["trials"],
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--n-samples", type=int, default=16)
    parser.add_argument("--n-trials", default="20,80", help="trial counts, comma-separated (default 20,80)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--explainers", default="all")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--panel", default="off,on", help="the panel off, on, or both (default off,on)")
    parser.add_argument("--panel-budget", type=float, default=0.3)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = [run(args, int(n), panel == "on") for n in args.n_trials.split(",") for panel in args.panel.split(",")]
    names = list(dict.fromkeys(name for result in results for name in result["phases"]))
    print(f"{' '.join(results[0]['argv'])}\n{results[0]['machine']}\n")
    header = " | ".join(f"{r['n_trials']} trials, panel {'on' if r['panel'] else 'off'}" for r in results)
    print(f"| phase | {header} |\n|---|" + "---:|" * len(results))
    for name in names:
        cells = []
        for r in results:
            seconds = r["phases"].get(name, 0.0)
            cells.append(f"{seconds:.1f} s ({seconds / r['median_trial']:.1f} te)")
        print(f"| {name} | {' | '.join(cells)} |")
    rows = {
        "median complete trial": lambda r: f"{r['median_trial']:.1f} s",
        "outside the trials, panel excluded": lambda r: f"{r['outside_trial_equivalents']:.1f} te",
        "share outside the trials": lambda r: f"{100 * r['share_outside']:.0f}%",
        "whole run / trials": lambda r: f"{r['total_over_trials']:.2f}x",
        "report: estimate / actual": lambda r: f"{r['report_estimate']:.0f} s / {r['report']:.0f} s",
    }
    for label, cell in rows.items():
        print(f"| **{label}** | {' | '.join(cell(r) for r in results)} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
