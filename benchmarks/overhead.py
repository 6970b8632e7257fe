"""What the report costs next to the trials: one ``python -m tuner run`` timed per phase.

The run is the command line's, in this process (``tuner.cli.main``), on torchvision's ResNet-50 with random weights
(``--weights none``) at 224² on the sample photographs: model and data, inert checks, trials, held-out scores,
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
import tempfile
from pathlib import Path

from _timing import machine

from tuner import cli
from tuner._phases import recording


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        argv = [
            "run",
            "--model",
            args.model,
            "--weights",
            "none",
            "--input-size",
            str(args.input_size),
            "--n-trials",
            str(args.n_trials),
            "--n-samples",
            str(args.n_samples),
            "--batch-size",
            str(args.batch_size),
            "--explainers",
            args.explainers,
            "--storage",
            f"sqlite:///{Path(folder) / 'overhead.db'}",
            "--out",
            str(Path(folder) / "out"),
            "--no-progress",
        ]
        argv += ["--no-baselines"] if args.no_baselines else []
        with recording(None) as times, contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(argv)
        if code != 0:
            raise SystemExit(f"the run failed with exit code {code}")
        total = times.total()
    phases = dict(times.seconds)
    phases["other"] = max(0.0, total - sum(phases.values()))
    outside = total - phases.get("trials", 0.0)
    return {
        "argv": argv[:-6],
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
