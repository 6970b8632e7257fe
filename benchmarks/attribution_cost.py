"""What an LRP attribution costs over one gradient, with the attribution engine and with zennit's hooks.

For each architecture (random weights, ``--weights none``'s seed 0, with BatchNorm statistics drawn as a trained
network's (:func:`with_trained_statistics`; ``--initial-statistics`` keeps torchvision's), a batch of the bundled
sample photos): the median seconds of one gradient (``x.requires_grad_(True); model(x).gather(1, t).sum().backward()``,
the parameters left as torchvision loads them, so weight gradients are computed too), of the gradient to the input
only, and of one attribution of each variant through the engine and through zennit's hooks (the reference path), all
repetitions interleaved; each as a ratio over the gradient. Then, in float64 at the zoo's small input size, the
largest per-sample max |engine - hooks| / max |hooks|, and the layers that keep a zennit hook under the engine.
``--memory`` adds the peak resident memory of a fresh process that runs one gradient or one attribution on ResNet-50;
``--study`` the trials per hour of a 20-trial resnet50 preset study (``--weights none``, panel off) with the engine
and with ``LRP_TUNER_ENGINE=off`` (trials scored four together, the default), in ``--study-rounds`` rounds (engine,
hooks, engine, hooks, ...: a study-level figure moves from run to run), and in the first round with the engine one
trial at a time (a trial's own seconds: ``tuner.search._study.own_seconds``); ``--only-study`` runs that alone. Every
process keeps freed memory for reuse as ``python -m tuner run`` does (:func:`explainers.engine.keep_freed_memory`),
the gradient's as well; ``--default-allocator`` leaves malloc as it is for the timing and the memory (the study's
``python -m tuner run`` processes keep freed memory either way).

    python benchmarks/attribution_cost.py --memory --study --save benchmarks/RESULTS-attribution_cost.json
    python benchmarks/attribution_cost.py --only-study --study 20 --save benchmarks/RESULTS-attribution_cost-study.json
    python benchmarks/attribution_cost.py --names resnet50 --repeats 3
    python benchmarks/attribution_cost.py --from-saved benchmarks/RESULTS-attribution_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch
from _timing import interleaved_medians, machine, status_mib, table
from zoo import build, input_size, photos

from explainers import LRPEpsilonAlpha2Beta1, LRPEpsilonGammaBox, LRPEpsilonPlus, LRPUniformEpsilon
from explainers.engine import EngineComposite, keep_freed_memory, zennit_hooks
from tuner.search._study import median_trial_seconds

NAMES = ("resnet50", "vgg16", "efficientnet_b0", "mobilenet_v3_large", "densenet121", "vit_b_16", "convnext_tiny")
VARIANTS = {
    "UniformEpsilon": LRPUniformEpsilon,
    "EpsilonGammaBox": LRPEpsilonGammaBox,
    "EpsilonPlus": LRPEpsilonPlus,
    "EpsilonAlpha2Beta1": LRPEpsilonAlpha2Beta1,
}
HERE = Path(__file__).resolve().parent


def gradient_runs(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> dict:
    """The gradient with weight gradients (the issue's unit) and the gradient to the input only."""

    def gradient() -> None:
        x = images.clone().requires_grad_(True)
        model(x).gather(1, targets[:, None]).sum().backward()
        model.zero_grad(set_to_none=True)

    def input_gradient() -> None:
        x = images.clone().requires_grad_(True)
        torch.autograd.grad(model(x).gather(1, targets[:, None]).sum(), x)

    return {"gradient": gradient, "input gradient": input_gradient}


def attribution_runs(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> dict:
    runs = {}
    for label, variant in VARIANTS.items():
        explainer = variant(model)
        explainer.check_inputs(images[:1])
        runs[label] = lambda e=explainer: e.attribute(images, targets)

        def hooks(e=explainer) -> None:
            with zennit_hooks():
                e.attribute(images, targets)

        runs[f"{label} (hooks)"] = hooks
    return runs


def benchmark_model(name: str, size: int, trained: bool = True) -> torch.nn.Module:
    """``name`` with the random weights of ``--weights none``; with ``trained``, its BatchNorm statistics drawn as a
    trained network's (:func:`with_trained_statistics`)."""
    model = build(name, size)
    return with_trained_statistics(model) if trained else model


def timing(name: str, size: int, batch: int, repeats: int, trained: bool = True) -> dict[str, float]:
    model = benchmark_model(name, size, trained)
    images = photos(size, batch)
    with torch.no_grad():
        targets = model(images).argmax(1)
    runs = {**gradient_runs(model, images, targets), **attribution_runs(model, images, targets)}
    return interleaved_medians(runs, repeats)


#: five configurations of a variant: every tunable at each of these values
SHARED_VALUES = (1e-6, 1e-4, 1e-2, 0.1, 1.0)


def shared_forward(name: str, size: int, batch: int, repeats: int, trained: bool = True) -> dict[str, float]:
    """Per variant: median seconds of five configurations by ``attribute_many`` (one forward) over those of five
    separate attributions, interleaved."""
    model = benchmark_model(name, size, trained)
    images = photos(size, batch)
    with torch.no_grad():
        targets = model(images).argmax(1)
    ratios = {}
    for label, variant in VARIANTS.items():
        explainer = variant(model)
        explainer.check_inputs(images[:1])
        configurations = [dict.fromkeys(explainer.get_tunables(), value) for value in SHARED_VALUES]
        explainers = [explainer.set_kwargs(**configuration) for configuration in configurations]
        runs = {
            "shared": lambda e=explainer, c=configurations: e.attribute_many(c, images, targets),
            "separate": lambda es=explainers: [e.attribute(images, targets) for e in es],
        }
        seconds = interleaved_medians(runs, repeats, warm_up=False)
        ratios[label] = seconds["shared"] / seconds["separate"]
    return ratios


def with_trained_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """BatchNorm statistics and affine parameters drawn away from torchvision's initial identity, as a trained
    network's are. With the identity, EfficientNet-B0's random activations shrink layer by layer (its logits to about
    1e-14): every rule's relevance is 0 there, a comparison of two zero maps checks nothing, and the timing would
    measure z-plus's fallback at more than half the neurons of 34 of its 49 convolutions (with drawn statistics: at
    a few neurons of 13 depthwise convolutions)."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            for tensor, low, high in (
                (module.running_mean, -0.5, 0.5),
                (module.running_var, 0.5, 2.0),
                (module.weight.data, 0.5, 1.5),
                (module.bias.data, -0.5, 0.5),
            ):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)
    return model


def equality(name: str) -> dict[str, object]:
    """Per variant in float64: the engine's largest relative difference from the hooks (BatchNorm as trained, see
    :func:`with_trained_statistics`), the smallest share of non-zero pixels in the hooks' maps (a vacuous comparison
    of empty maps would show 0), and the layers left to zennit's hooks."""
    size = input_size(name)
    model = benchmark_model(name, size).double()
    images = photos(size, 2).double()
    with torch.no_grad():
        targets = model(images).argmax(1)
    record: dict[str, object] = {}
    for label, variant in VARIANTS.items():
        explainer = variant(model)
        relevance = explainer.attribute(images, targets)
        with zennit_hooks():
            reference = explainer.attribute(images, targets)
        difference = (relevance - reference).flatten(1).abs().amax(1) / reference.flatten(1).abs().amax(1)
        composite = EngineComposite(explainer.build_composite(model))
        with composite.context(model):
            pass
        nonzero = float((reference != 0).flatten(1).double().mean(1).min())
        record[label] = {"error": float(difference.max()), "nonzero": nonzero, "hooked": dict(composite.hooked)}
    return record


def memory_child(kind: str, size: int, batch: int, trained: bool = True) -> None:
    """In a fresh process: ResNet-50 and its inputs, the peak reset (Linux's clear_refs), then one run of ``kind``;
    prints the resident memory before the run and its peak during it (MiB)."""
    model = benchmark_model("resnet50", size, trained)
    images = photos(size, batch)
    with torch.no_grad():
        targets = model(images).argmax(1)
    runs = {**gradient_runs(model, images, targets), **attribution_runs(model, images, targets)}
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from the resident memory now
    before = status_mib("VmRSS")
    runs[kind]()
    print(json.dumps({"before": before, "after": status_mib("VmHWM")}))


def memory(size: int, batch: int, default_allocator: bool, trained: bool = True) -> dict[str, dict[str, float]]:
    kinds = ["gradient", *(label for name in VARIANTS for label in (name, f"{name} (hooks)"))]
    results = {}
    for kind in kinds:
        command = [sys.executable, __file__, "--memory-child", kind, "--size", str(size), "--batch", str(batch)]
        command += ["--default-allocator"] if default_allocator else []
        command += [] if trained else ["--initial-statistics"]
        output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=HERE).stdout
        results[kind] = json.loads(output.strip().splitlines()[-1])
    return results


STUDY_RUNS = {  # label: (LRP_TUNER_ENGINE, --trials-together)
    "engine": ("on", 4),
    "hooks": ("off", 4),
    "engine, one trial at a time": ("on", 1),
}


def study(trials: int, rounds: int = 1) -> dict[str, list[dict[str, float]]]:
    """Trials per hour of the resnet50 preset study (panel off) with the engine and with zennit's hooks, trials
    scored four together (the default), in ``rounds`` rounds one after the other (a study-level figure moves from run
    to run); and, in the first round, with the engine one trial at a time (``--trials-together 1``)."""
    results: dict[str, list[dict[str, float]]] = {label: [] for label in STUDY_RUNS}
    for index in range(rounds):
        for label, (setting, together) in STUDY_RUNS.items():
            if together == 1 and index > 0:
                continue
            with tempfile.TemporaryDirectory() as folder:
                storage = f"sqlite:///{folder}/study.db"
                command = [sys.executable, "-m", "tuner", "run", "--model", "resnet50", "--weights", "none"]
                command += ["--no-panel", "--n-trials", str(trials), "--storage", storage, "--study-name", "cost"]
                command += ["--trials-together", str(together)]
                environment = {**os.environ, "LRP_TUNER_ENGINE": setting}
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, env=environment, cwd=HERE.parent)
                whole = time.perf_counter() - start
                trial = median_trial_seconds(optuna.load_study(study_name="cost", storage=storage))
            results[label].append(
                {"whole seconds": whole, "median trial seconds": trial, "trials per hour": 3600 / trial}
            )
            print(label, index, results[label][-1], flush=True)
    return results


def report(records: dict) -> str:
    lines = [f"Machine: {records['machine']}; allocator: {records.get('allocator', 'malloc defaults')}"]
    lines += [f"BatchNorm statistics: {records.get('statistics', 'torchvision initial')}", ""]
    rows = []
    for name, seconds in records["timing"].items():
        gradient = seconds["gradient"]
        row = [name, f"{gradient:.3f} s", f"{seconds['input gradient'] / gradient:.2f}×"]
        for label in VARIANTS:
            row.append(f"{seconds[label] / gradient:.2f}× ({seconds[f'{label} (hooks)'] / gradient:.2f}×)")
        rows.append(row)
    header = ["model", "gradient", "input gradient", *(f"{label} engine (hooks)" for label in VARIANTS)]
    if rows:
        lines += [
            f"Time over one gradient, batch {records['batch']} × {records['size']}², median of {records['repeats']}:"
        ]
        lines += ["", table(header, rows), ""]
    if records.get("shared"):
        rows = [[name, *(f"{ratios[label]:.2f}×" for label in VARIANTS)] for name, ratios in records["shared"].items()]
        lines += ["Five configurations from one forward (attribute_many) over five separate attributions:", ""]
        lines += [table(["model", *VARIANTS], rows), ""]
    if records.get("equality"):
        rows = []
        for name, record in records["equality"].items():
            errors = [
                f"{record[label]['error']:.1e} ({record[label].get('nonzero', float('nan')):.0%})" for label in VARIANTS
            ]
            hooked = sorted({layer for label in VARIANTS for layer in record[label]["hooked"]})
            rows.append([name, *errors, ", ".join(hooked) or "none"])
        lines += [
            "Engine against the hooks, float64, largest per-sample max |difference| / max |hooks| (the smallest share",
            "of non-zero pixels in a sample's map):",
            "",
        ]
        lines += [table(["model", *VARIANTS, "layers left to zennit's hooks"], rows), ""]
    if records.get("memory"):
        base = records["memory"]["gradient"]
        rows = [
            [kind, f"{m['after']:.0f}", f"{m['after'] / base['after']:.2f}×", f"{m['after'] - m['before']:.0f}"]
            for kind, m in records["memory"].items()
        ]
        lines += ["Peak resident memory of a fresh process, ResNet-50 (MiB; the run's growth over the loaded model):"]
        lines += ["", table(["run", "peak", "over gradient", "growth"], rows), ""]
    if records.get("study"):
        runs = {label: run if isinstance(run, list) else [run] for label, run in records["study"].items()}
        engine, hooks = runs["engine"], runs["hooks"]
        ratios = [e["trials per hour"] / h["trials per hour"] for e, h in zip(engine, hooks)]
        pairs = ", ".join(
            f"{e['trials per hour']:.0f} vs {h['trials per hour']:.0f} ({ratio:.2f}×)"
            for e, h, ratio in zip(engine, hooks, ratios)
        )
        lines += [
            f"resnet50 preset, --weights none, panel off, trials scored four together, trials per hour with the engine "
            f"vs zennit's hooks, {len(ratios)} round(s): {pairs}; median {statistics.median(ratios):.2f}×."
        ]
        alone = runs.get("engine, one trial at a time")
        if alone:
            lines += [
                f"With the engine, one trial at a time (first round): {alone[0]['trials per hour']:.0f} trials per "
                f"hour (median trial {alone[0]['median trial seconds']:.2f} s); four together: "
                f"{engine[0]['trials per hour'] / alone[0]['trials per hour']:.2f}× that."
            ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="+", default=list(NAMES))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-equality", action="store_true", help="skip the float64 comparison with the hooks")
    parser.add_argument("--memory", action="store_true", help="peak memory on ResNet-50, one process per run")
    parser.add_argument("--study", type=int, nargs="?", const=20, default=0, help="trials of the study comparison")
    parser.add_argument("--study-rounds", type=int, default=3, help="rounds of the study comparison (engine, hooks)")
    parser.add_argument("--only-study", action="store_true", help="the study comparison alone (with --study)")
    parser.add_argument("--save", type=Path, help="write the records here (JSON)")
    parser.add_argument("--from-saved", type=Path, help="print the report of saved records")
    parser.add_argument("--default-allocator", action="store_true", help="malloc's defaults for timing and memory")
    parser.add_argument(
        "--initial-statistics", action="store_true", help="time torchvision's initial BatchNorm (identity) statistics"
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", torch.get_num_threads())))
    kept = not args.default_allocator and keep_freed_memory()
    if args.memory_child:
        return memory_child(args.memory_child, args.size, args.batch, not args.initial_statistics)
    if args.from_saved:
        print(report(json.loads(args.from_saved.read_text())))
        return None
    records: dict = {"machine": machine(), "size": args.size, "batch": args.batch, "repeats": args.repeats}
    records["allocator"] = "freed memory kept (keep_freed_memory)" if kept else "malloc's defaults"
    trained = not args.initial_statistics
    records["statistics"] = "drawn as trained (with_trained_statistics)" if trained else "torchvision initial"
    if args.only_study:
        args.names, args.no_equality = [], True
    records["timing"] = {}
    for name in args.names:
        records["timing"][name] = timing(name, args.size, args.batch, args.repeats, trained)
        print(name, {label: round(value, 3) for label, value in records["timing"][name].items()}, flush=True)
    if not args.only_study:
        records["shared"] = {"resnet50": shared_forward("resnet50", args.size, args.batch, args.repeats, trained)}
        print("shared", records["shared"], flush=True)
    if not args.no_equality:
        records["equality"] = {name: equality(name) for name in args.names}
    if args.memory:
        records["memory"] = memory(args.size, args.batch, args.default_allocator, trained)
    if args.study:
        records["study"] = study(args.study, args.study_rounds)
    if args.save:
        args.save.write_text(json.dumps(records, indent=1))
    print(report(records))
    return None


if __name__ == "__main__":
    main()
