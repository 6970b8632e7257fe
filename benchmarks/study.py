"""Study-level timing: what the tuner's optimisations save, and what a second worker process adds.

(a) **Time to the best value**, with our optimisations on (``pruner="wilcoxon"``: per-sample scores
    stop hopeless configurations; ``share_work=True``: the metric's unperturbed scores computed once per
    study and repeated configurations answered from the study) against off (``pruner="none"``,
    ``share_work=False``), with the same sampler (TPE, same seed), the same budget of complete trials, the
    same model object and samples. Studies (``--studies``):

    - ``digits``: the embedded default with its preset's defaults (64 samples, batch 16, 60 trials, all four
      variants);
    - ``resnet50-digits``: torchvision's ResNet-50 trained here on the digits (``--trained-size`` 32, 8 epochs,
      about 75 s once, cached; ImageNet weights cannot be downloaded on this machine), 32 held-out digits,
      batch 8, 20 trials; one study per ``--resnet-explainers`` entry (all four variants, LRPEpsilonGammaBox);
    - ``resnet50``: ResNet-50 with random weights on the 8 sample photographs and their mirror images
      (16 images at ``--resnet-size`` 96), batch 4, 20 trials, the same two explainer sets.

    Each trial's completion time is the ``datetime_complete`` Optuna records when the trial is told,
    relative to the call of ``tune()`` (one-off work included). "Time to best" is when a run's final best
    value was first reached; "time to common target" is when a value at least as good as the worse of the
    two runs' best values was first reached (the time at an equal best value). Where a study ends depends on
    its seed (pruned trials change what TPE proposes next), so each seed gives one on/off pair and the
    verdict takes medians over the seeds; on and off alternate.

(b) **Throughput of 1 and 2 worker processes** on one study: ``python -m tuner run --storage <journal
    file> --pruner none --no-report`` with ``OMP_NUM_THREADS=1`` each, the same total ``--n-trials``
    (default: the digits preset's 60). Trials per second from the launch to the last trial's completion
    (start-up included) and in the steady state (first trial start to last completion). 1 and 2 processes
    alternate, ``--repeats`` times; medians.

    python benchmarks/study.py --part b                                            # (b), 2 repeats
    python benchmarks/study.py --part a --studies digits resnet50-digits --seeds 0 1 2 --repeats 1
    python benchmarks/study.py --part a --studies resnet50 --resnet-explainers all --resnet-seeds 0
    python benchmarks/study.py --part a --studies resnet50 --resnet-explainers epsilon_gamma_box
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna
import torch
from _timing import machine, median, spread, table
from optuna.trial import TrialState

MODES = {"on": {"pruner": "wilcoxon", "share_work": True}, "off": {"pruner": "none", "share_work": False}}  # Search


# -- (a) time to the best value --------------------------------------------------------------------------------
def load_studies(args) -> list[dict]:
    import studies

    specs = []
    if "digits" in args.studies:
        digits = studies.get_preset("digits")
        d = digits.defaults
        x, y = digits.load_data(None, d["n_samples"])
        specs.append(
            dict(
                name="digits (embedded default)",
                preset=digits,
                model=digits.load_model(None),
                data=(x, y),
                n_samples=d["n_samples"],
                batch_size=d["batch_size"],
                n_trials=args.digits_trials or d["n_trials"],
                detail=f"{len(x)} samples 1x16x16, batch {d['batch_size']}",
            )
        )
    if "resnet50-digits" in args.studies:
        model, x, y = digits_resnet50(args.trained_size, args.trained_epochs)
        x, y = x[: args.trained_samples], y[: args.trained_samples]
        specs += per_explainer_set(
            args,
            name="ResNet-50 (trained on digits)",
            preset=studies.get_preset("digits"),
            model=model,
            data=(x, y),
            n_samples=len(x),
            batch_size=args.trained_batch,
            n_trials=args.trained_trials,
            detail=f"{len(x)} held-out digits 3x{args.trained_size}x{args.trained_size}, batch {args.trained_batch}",
        )
    if "resnet50" in args.studies:
        resnet = studies.get_preset("resnet50")
        torch.manual_seed(0)
        model = resnet.load_model("none")
        images = resnet.load_data(None, None)[0]
        images = torch.cat([images, images.flip(-1)])[: args.resnet_images]  # the photographs, then mirrored
        if args.resnet_size != images.shape[-1]:
            images = torch.nn.functional.interpolate(
                images, size=(args.resnet_size,) * 2, mode="bilinear", antialias=True, align_corners=False
            )
        specs += per_explainer_set(
            args,
            name="ResNet-50 (random weights)",
            preset=resnet,
            model=model,
            data=images,
            n_samples=len(images),
            batch_size=args.resnet_batch,
            n_trials=args.resnet_trials,
            detail=f"{len(images)} photos {args.resnet_size}x{args.resnet_size}, batch {args.resnet_batch}",
        )
    return specs


def per_explainer_set(args, **spec) -> list[dict]:
    """One study spec per ``--resnet-explainers`` entry: all four variants (None) or one variant."""
    from explainers import get_explainer

    return [dict(spec, explainers=None if name == "all" else [get_explainer(name)]) for name in args.resnet_explainers]


def digits_resnet50(size: int, epochs: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """torchvision's ResNet-50, trained here on the digits preset's training split (grey repeated to RGB,
    resized to ``size``): a ResNet-50 with learned weights, since ImageNet weights cannot be downloaded on this
    machine. Cached in ~/.cache/lrp-tuner-bench; returns (model, held-out inputs, labels)."""
    import torchvision

    from studies import _digits_model as _digits

    x_train, y_train, x_test, y_test = _digits.digits_split()

    def as_rgb(x):
        return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear").repeat(1, 3, 1, 1)

    x_train, x_test = as_rgb(x_train), as_rgb(x_test)
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=10)
    path = Path.home() / ".cache" / "lrp-tuner-bench" / f"resnet50-digits-{size}px-{epochs}epochs.pt"
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
    else:
        start = time.perf_counter()
        steps = epochs * -(-len(y_train) // 64)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
        model.train()
        for _ in range(epochs):
            for index in torch.randperm(len(y_train)).split(64):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(x_train[index]), y_train[index]).backward()
                optimizer.step()
                schedule.step()
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
        print(f"trained ResNet-50 on digits in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    print(f"ResNet-50 trained on digits ({size}x{size}): held-out accuracy {accuracy:.3f}", file=sys.stderr)
    return model, x_test, y_test


def run_study(spec: dict, mode: str, seed: int) -> dict:
    from tuner import Budget, Objective, Report, Search, tune

    start_wall = datetime.datetime.now()
    start = time.perf_counter()
    result = tune(
        spec.get("explainers"),
        spec["model"],
        spec["data"],
        objective=Objective("abpc"),
        budget=Budget(n_trials=spec["n_trials"], n_samples=spec["n_samples"]),
        search=Search(sampler="tpe", seed=seed, batch_size=spec["batch_size"], **MODES[mode]),
        report=Report(show_progress_bar=False, n_heatmaps=0),
        storage=None,
        explainer_kwargs={"low": spec["preset"].low, "high": spec["preset"].high},
    )
    total = time.perf_counter() - start
    study = result.study
    trials = study.get_trials(deepcopy=False)
    done = [(t.datetime_complete - start_wall).total_seconds() for t in trials if t.datetime_complete]
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = study.best_trial
    return dict(
        mode=mode,
        total=total,
        best=best.value,
        best_params=best.params,
        best_number=best.number,
        maximize=study.direction == optuna.study.StudyDirection.MAXIMIZE,
        completed=[((t.datetime_complete - start_wall).total_seconds(), t.value) for t in complete],
        last_done=max(done),
        n_complete=len(complete),
        n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
        n_failed=sum(t.state == TrialState.FAIL for t in trials),
        n_repeat=sum("repeat_of" in t.user_attrs for t in trials),
    )


def first_time_at(run: dict, target: float) -> float:
    """When a completed trial first reached ``target`` (at least as good)."""
    good = [
        when
        for when, value in run["completed"]
        if (value >= target - 1e-12 if run["maximize"] else value <= target + 1e-12)
    ]
    return min(good) if good else float("nan")


def part_a(args) -> None:
    torch.set_num_threads(args.threads)
    for spec in load_studies(args):
        resnet = spec["name"].startswith("ResNet-50 (random")
        seeds = args.resnet_seeds if resnet else args.seeds
        repeats = args.resnet_repeats if resnet else args.repeats
        explainers = "all four variants" if spec.get("explainers") is None else spec["explainers"][0].__name__
        print(
            f"\n### (a) {spec['name']}: {spec['detail']}, {spec['n_trials']} trials, {explainers}, "
            f"TPE seeds {', '.join(map(str, seeds))}, {repeats} repeat(s) each, torch threads {args.threads}"
        )
        runs = {seed: {"on": [], "off": []} for seed in seeds}
        for seed in seeds:
            for repeat in range(repeats):
                for mode in ("on", "off") if repeat % 2 == 0 else ("off", "on"):
                    run = run_study(spec, mode, seed)
                    runs[seed][mode].append(run)
                    print(
                        f"  seed {seed} {mode:>3}: total {run['total']:.1f} s, best {run['best']:.6f} "
                        f"(trial {run['best_number']}), {run['n_complete']} complete / {run['n_pruned']} pruned / "
                        f"{run['n_repeat']} answered from the study / {run['n_failed']} failed",
                        file=sys.stderr,
                    )
        report_a(runs)
        if args.save:
            with open(args.save, "a") as handle:
                handle.write(
                    json.dumps(
                        {
                            "study": spec["name"],
                            "detail": spec["detail"],
                            "explainers": explainers,
                            "runs": {seed: by_mode for seed, by_mode in runs.items()},
                        },
                        default=str,
                    )
                    + "\n"
                )


def report_a(runs: dict) -> None:
    """One row per seed and mode; the verdict compares the medians over seeds of the time to each seed's
    common target (the worse of that seed's two best values)."""
    rows, figures = [], {"on": [], "off": []}
    for seed, by_mode in runs.items():
        maximize = by_mode["on"][0]["maximize"]
        best = {mode: median(r["best"] for r in rs) for mode, rs in by_mode.items()}
        common = min(best.values()) if maximize else max(best.values())
        for mode, rs in by_mode.items():
            figure = dict(
                to_best=median(first_time_at(r, r["best"]) for r in rs),
                to_common=median(first_time_at(r, common) for r in rs),
                total=median(r["total"] for r in rs),
                best=best[mode],
                common=common,
            )
            figures[mode].append(figure)
            r0 = rs[0]
            rows.append(
                [
                    seed,
                    mode,
                    f"{best[mode]:.6f}",
                    r0["best_number"],
                    f"{common:.6f}",
                    f"{figure['to_best']:.1f}",
                    f"{figure['to_common']:.1f}",
                    f"{figure['total']:.1f}",
                    spread([r["total"] for r in rs]),
                    f"{r0['n_complete']}/{r0['n_pruned']}/{r0['n_repeat']}/{r0['n_failed']}",
                ]
            )
    print(
        table(
            [
                "seed",
                "optimisations",
                "best value",
                "best trial",
                "common target",
                "time to best s",
                "time to common target s",
                "total s",
                "total min-max s",
                "complete/pruned/repeats/failed",
            ],
            rows,
        )
    )
    on_better = sum(
        (f_on["best"] > f_off["best"]) == maximize and not math.isclose(f_on["best"], f_off["best"])
        for f_on, f_off in zip(figures["on"], figures["off"])
    )
    equal = sum(
        math.isclose(f_on["best"], f_off["best"], rel_tol=1e-6, abs_tol=1e-12)
        for f_on, f_off in zip(figures["on"], figures["off"])
    )
    print(f"best values: equal for {equal} of {len(runs)} seeds, better with the optimisations on for {on_better}")
    ratios = [f_off["to_common"] / f_on["to_common"] for f_on, f_off in zip(figures["on"], figures["off"])]
    medians = {
        mode: {key: median(f[key] for f in fs) for key in ("to_common", "to_best", "total")}
        for mode, fs in figures.items()
    }
    print(
        f"off / on, medians over seeds: time to common target {medians['off']['to_common']:.1f} s / "
        f"{medians['on']['to_common']:.1f} s = {medians['off']['to_common'] / medians['on']['to_common']:.2f}x "
        f"(per seed: {', '.join(f'{r:.2f}x' for r in ratios)}; target >= 2x), time to best "
        f"{medians['off']['to_best'] / medians['on']['to_best']:.2f}x, total "
        f"{medians['off']['total'] / medians['on']['total']:.2f}x"
    )


# -- (b) throughput of 1 and 2 worker processes ------------------------------------------------------------------
def run_workers(
    n_workers: int, n_trials: int, folder: Path, index: int, model: str | None, device: str = "cpu"
) -> dict:
    journal = folder / f"throughput-{n_workers}w-{index}.log"
    name = f"throughput-{n_workers}w-{index}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    from tuner.cli import command_line

    command = command_line(
        "run",
        storage=journal,
        study_name=name,
        n_trials=n_trials,
        pruner="none",
        no_progress=True,
        no_report=True,
        device=device,
        model=model,
        weights="none" if model else None,
    )
    launch_wall = datetime.datetime.now()
    launch = time.perf_counter()
    processes = [
        subprocess.Popen(
            command + ["--out", str(folder / f"out-{name}-{k}")],
            cwd=str(folder),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(n_workers)
    ]
    errors = [p.communicate()[1] for p in processes]
    wall = time.perf_counter() - launch
    from tuner.storage._open import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(str(journal), heartbeat_interval=None))
    trials = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    for process, error in zip(processes, errors):
        if process.returncode != 0:
            raise RuntimeError(f"a worker exited with {process.returncode}: {error.strip()[-1500:]}")
    first_start = min(t.datetime_start for t in trials)
    last_done = max(t.datetime_complete for t in trials)
    to_last = (last_done - launch_wall).total_seconds()
    steady = (last_done - first_start).total_seconds()
    computed = [
        (t.datetime_complete - t.datetime_start).total_seconds() for t in trials if "repeat_of" not in t.user_attrs
    ]
    return dict(
        workers=n_workers,
        n=len(trials),
        wall=wall,
        to_last=to_last,
        steady=steady,
        trial=median(computed),
        rate=len(trials) / to_last,
        steady_rate=len(trials) / steady,
    )


def part_b(args) -> None:
    print(
        f"\n### (b) throughput: `python -m tuner run` on {args.workers_model or 'digits (embedded default)'}, "
        f"journal-file storage, pruner none, OMP_NUM_THREADS=1 per process, --device {args.workers_device}, "
        f"{args.workers_trials} trials in all"
    )
    runs = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="lrp-tuner-bench-") as folder:
        for repeat in range(args.repeats):
            for n_workers in (1, 2) if repeat % 2 == 0 else (2, 1):
                run = run_workers(
                    n_workers, args.workers_trials, Path(folder), repeat, args.workers_model, args.workers_device
                )
                runs[n_workers].append(run)
                print(
                    f"  {n_workers} worker(s): {run['n']} trials, launch to last trial {run['to_last']:.1f} s, "
                    f"steady {run['steady']:.1f} s, processes exited after {run['wall']:.1f} s",
                    file=sys.stderr,
                )
    rows, rate, steady = [], {}, {}
    for n_workers, rs in runs.items():
        rate[n_workers] = median(r["rate"] for r in rs)
        steady[n_workers] = median(r["steady_rate"] for r in rs)
        rows.append(
            [
                n_workers,
                rs[0]["n"],
                f"{median(r['to_last'] for r in rs):.1f}",
                spread([r["to_last"] for r in rs]),
                f"{rate[n_workers]:.3f}",
                f"{steady[n_workers]:.3f}",
                f"{median(r['trial'] for r in rs):.2f}",
                f"{median(r['to_last'] - r['steady'] for r in rs):.1f}",
                f"{median(r['wall'] for r in rs):.1f}",
            ]
        )
    print(
        table(
            [
                "processes",
                "trials",
                "launch to last trial s",
                "min-max s",
                "trials/s (incl. start-up)",
                "trials/s (steady)",
                "median trial s",
                "start-up s",
                "processes exited s",
            ],
            rows,
        )
    )
    slower = median(r["trial"] for r in runs[2]) / median(r["trial"] for r in runs[1])
    print(
        f"2 / 1 processes: {rate[2] / rate[1]:.2f}x including start-up, {steady[2] / steady[1]:.2f}x steady "
        f"(target >= 1.7x). One trial took {slower:.2f}x as long with 2 processes as with 1 (1.00x if each "
        f"process had a core of its own; 'median trial s' counts computed trials only; 'start-up' is launch to "
        f"the first trial's start; the workers run with --no-report). "
        f"This machine: {os.cpu_count()} cores, load average now {', '.join(f'{v:.2f}' for v in os.getloadavg())}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["a", "b", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=2, help="repetitions of each compared run (median)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="TPE seeds of the digits study")
    parser.add_argument(
        "--resnet-seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="TPE seeds of the ResNet-50 study (one on/off pair each: where a study ends depends on its seed)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads in part (a) (default 1: on a "
        "shared 2-core machine two threads wait on each other whenever another job holds a core)",
    )
    parser.add_argument("--digits-trials", type=int, default=None, help="default: the digits preset's n_trials")
    parser.add_argument(
        "--studies",
        nargs="+",
        choices=["digits", "resnet50-digits", "resnet50"],
        default=["digits", "resnet50-digits", "resnet50"],
        help="the studies of part (a): the "
        "embedded default, a ResNet-50 trained here on digits, a ResNet-50 with random weights",
    )
    parser.add_argument("--trained-size", type=int, default=32, help="image side of the trained ResNet-50")
    parser.add_argument("--trained-epochs", type=int, default=8)
    parser.add_argument("--trained-samples", type=int, default=32)
    parser.add_argument("--trained-batch", type=int, default=8)
    parser.add_argument("--trained-trials", type=int, default=20)
    parser.add_argument("--resnet-trials", type=int, default=20)
    parser.add_argument(
        "--resnet-explainers",
        nargs="+",
        default=["all", "epsilon_gamma_box"],
        help="one ResNet-50 study per entry: all (the four variants) or one variant's short name",
    )
    parser.add_argument("--resnet-repeats", type=int, default=1, help="repetitions of the ResNet-50 runs")
    parser.add_argument("--resnet-images", type=int, default=16, help="the 8 sample photographs, then mirrored")
    parser.add_argument("--resnet-size", type=int, default=96, help="image side (the photographs are 224)")
    parser.add_argument(
        "--resnet-batch",
        type=int,
        default=4,
        help="samples per chunk; the Wilcoxon pruner needs 4 scores before it may stop a trial",
    )
    parser.add_argument(
        "--save", help="append part (a)'s runs (every trial's completion time and value) to this JSON-lines file"
    )
    parser.add_argument(
        "--workers-trials",
        type=int,
        default=60,
        help="total trials of the study in part (b) (default: the digits preset's own n_trials)",
    )
    parser.add_argument("--workers-model", default=None, help="preset for part (b) (default: digits)")
    parser.add_argument("--workers-device", default="cpu", help="--device of the workers in part (b)")
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("tuner").setLevel(logging.ERROR)
    print(f"machine: {machine()}")
    if args.part in ("a", "both"):
        part_a(args)
    if args.part in ("b", "both"):
        part_b(args)


if __name__ == "__main__":
    main()
