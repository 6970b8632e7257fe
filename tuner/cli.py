"""The command line: ``python -m tuner run|dashboard|best`` (installed as ``lrp-tuner``).

Parsing and printing only: what a run decides (samples tuned on and held out, the study's name, the best
trial) is :mod:`tuner._policy`'s, shared with ``tune()``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from . import _policy
from ._result import TuneResult
from ._storage import (
    DEFAULT_STORAGE,
    artifact_dir_for,
    artifact_store,
    check_storage,
    mask_url,
    open_storage,
    redact,
)
from ._strategies import PRUNERS, SAMPLERS

BASELINES = ("zero", "min", "mean", "blur", "uniform")  # metrics._perturbation.BASELINES, without importing torch

EXIT_BAD_INPUT = 2


EXIT_TERMINATED = 128 + signal.SIGTERM


class CliError(Exception):
    """Bad input: printed as one line, exit code 2, nothing created."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C: Optuna marks the running trial failed at once (not after the heartbeat)."""


RECEIVED: list[KeyboardInterrupt] = []  # the signals of this command: an error raised while one was handled
# (a database call cut short, Optuna failing to record the trial) may have lost it from its context


def _terminate(signum: int, frame: Any) -> None:
    RECEIVED.append(Terminated())
    raise RECEIVED[-1]


def _interrupt(signum: int, frame: Any) -> None:
    RECEIVED.append(KeyboardInterrupt())
    raise RECEIVED[-1]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    configure_output(verbose=getattr(args, "verbose", False))
    RECEIVED.clear()
    previous = signal.signal(signal.SIGTERM, _terminate)
    previous_int = signal.signal(signal.SIGINT, _interrupt)
    try:
        return args.command(args)
    except KeyboardInterrupt as interrupt:
        return _interrupted(interrupt)
    except Exception as error:
        interruption = _interruption(error) or (RECEIVED[-1] if RECEIVED else None)
        if interruption is not None:  # e.g. a database driver's error raised while Ctrl-C was handled
            return _interrupted(interruption)
        if not isinstance(error, (CliError, ValueError, TypeError, OSError)):
            raise
        print(f"error: {redact(str(error), getattr(args, 'storage', None))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


QUIETED_LOGGERS = ("matplotlib", "PIL", "sqlalchemy")  # the font cache's messages, a pool's reset tracebacks


def configure_output(*, verbose: bool) -> None:
    """What a CLI user reads: the tuner's lines and Optuna's warnings about trials, one line each. Optuna's
    experimental and other Python warnings, matplotlib's font-cache messages and the database drivers' logs are
    shown only with ``verbose`` (which also shows the tracebacks of failed trials and the tuner's debug lines)."""
    logging.basicConfig(format="%(message)s", level=logging.INFO)
    logging.getLogger("tuner").setLevel(logging.DEBUG if verbose else logging.INFO)
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.CRITICAL)
    for handler in logging.getLogger("optuna").handlers:
        handler.removeFilter(_without_traceback)
        handler.removeFilter(_not_interrupted)
        handler.addFilter(_not_interrupted)
        if not verbose:
            handler.addFilter(_without_traceback)  # a failed trial is one line; its reason is in the storage
    if not verbose:
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", module=r"(optuna|matplotlib)(\.|$)")


def _interruption(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM) during whose handling ``error`` was raised, if any."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _interrupted(interrupt: KeyboardInterrupt) -> int:
    """Ctrl-C or SIGTERM anywhere in a command: one line, no traceback; the exit code says which."""
    terminated = isinstance(interrupt, Terminated)
    print(
        f"{'terminated' if terminated else 'interrupted'}: a trial that was running is marked failed; "
        "run the same command again to resume",
        file=sys.stderr,
    )
    return EXIT_TERMINATED if terminated else 130


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line (and the hint to --help), not the whole usage."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


def _without_traceback(record: logging.LogRecord) -> bool:
    record.exc_info, record.exc_text = None, None
    return True


def _not_interrupted(record: logging.LogRecord) -> bool:
    """No record of a trial stopped by Ctrl-C or SIGTERM: main's one line says so."""
    return not (record.exc_info and _interruption(record.exc_info[1]) is not None)  # type: ignore[arg-type]


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _key_values(text: str) -> dict[str, Any]:
    """``key=value,...`` as a dict; values read as int, float, true/false/none, else kept as text."""
    settings: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected key=value pairs separated by commas, got {item!r}")
        settings[key.strip()] = _value(value.strip())
    return settings


def _value(text: str) -> Any:
    named = {"true": True, "false": False, "none": None}
    if text.lower() in named:
        return named[text.lower()]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _objective_settings(preset: Any, metric_names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The metric's settings: the preset's (those the chosen metrics take), then --metric-kwargs, then
    --baseline; a key none of the metrics takes is refused here, before any work."""
    from metrics import METRICS

    from ._tune import check_metric_kwargs

    given = {**args.metric_kwargs, **({"baseline": args.baseline} if args.baseline else {})}
    check_metric_kwargs(list(metric_names), given)
    accepted = frozenset().union(*(METRICS[name].accepted_settings() for name in metric_names))
    preset_settings = {k: v for k, v in getattr(preset, "metric_kwargs", {}).items() if k in accepted}
    if "baseline" in given and given["baseline"] != "blur":
        preset_settings.pop("blur_sigma", None)  # the preset's blur width belongs to its blur baseline
    return {**preset_settings, **given}


def _seconds(value: str) -> float:
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value}")
    return number


def _floats(value: str) -> list[float]:
    try:
        return [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {value!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="lrp-tuner", description="Find the most faithful LRP configuration for a model with an Optuna study."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run (or resume) a study")
    run.add_argument(
        "--model",
        help="a preset (default: the embedded digits ResNet), any torchvision classifier (efficientnet_b0, "
        "vit_b_16, ...), or your own: package.module:callable or path/to/file.py:callable returning an nn.Module",
    )
    run.add_argument(
        "--weights",
        help="DEFAULT or a torchvision weights name (IMAGENET1K_V2), a state-dict PATH, or none (random); "
        "default: the preset's, torchvision's DEFAULT, or the callable's own initialisation",
    )
    run.add_argument("--num-classes", type=_positive, help="outputs of the model's head (passed as num_classes=)")
    run.add_argument("--input-size", type=_positive, help="crop size in pixels (default: from the weights, or 224)")
    run.add_argument("--mean", type=_floats, help="normalisation mean per channel, e.g. 0.5,0.5,0.5 (one: grayscale)")
    run.add_argument("--std", type=_floats, help="normalisation std per channel, e.g. 0.25,0.25,0.25")
    run.add_argument(
        "--data",
        help="image folder (flat or one subfolder per class), preprocessed for the model; default: the preset's "
        "data, or sample photographs",
    )
    run.add_argument(
        "--targets",
        choices=["label", "prediction"],
        help="explain the label or the model's prediction (default: the label where the data has one)",
    )
    run.add_argument(
        "--explainers",
        default="all",
        help="all, or comma-separated names (uniform_epsilon, epsilon_gamma_box, epsilon_plus, epsilon_alpha2_beta1)",
    )
    run.add_argument("--metric", default="abpc", help="abpc, morf, lerf, faithfulness_correlation, irof, ...")
    run.add_argument(
        "--objectives",
        help="several metrics, comma-separated (e.g. abpc,sparseness): a "
        "multi-objective study whose result is a Pareto front",
    )
    run.add_argument(
        "--baseline",
        choices=BASELINES,
        help="what a perturbed feature becomes (default: the preset's, a blur for images; see README)",
    )
    run.add_argument(
        "--metric-kwargs",
        type=_key_values,
        default={},
        metavar="KEY=VALUE,...",
        help="the metric's settings, e.g. n_steps=20,blur_sigma=2; part of the study: resuming with others is refused",
    )
    run.add_argument("--n-trials", type=_positive, help="total finished trials of the study")
    run.add_argument("--n-samples", type=_positive, help="samples every trial scores")
    run.add_argument("--batch-size", type=_positive, help="samples attributed at once")
    run.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL or journal file path")
    run.add_argument("--study-name", help="default: <model>-<metric>-<explainers>")
    run.add_argument("--sampler", default="tpe", choices=SAMPLERS)
    run.add_argument("--pruner", default="wilcoxon", choices=PRUNERS)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    run.add_argument("--timeout", type=_seconds, help="seconds after which no new trial starts")
    run.add_argument("--out", default="lrp-tuner-out", help="folder for the table, best configuration, heatmaps")
    run.add_argument(
        "--heartbeat",
        type=_positive,
        default=60,
        help="seconds between a worker's heartbeats; "
        "a trial silent for twice as long is failed and retried (RDB storages)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--verbose",
        action="store_true",
        help="also show Optuna's and matplotlib's warnings, database logs and failed trials' tracebacks",
    )
    run.add_argument(
        "--no-report",
        action="store_true",
        help="skip the table and the files of --out (baselines, "
        "held-out scores, heatmaps): for extra workers of a shared study, which then exit at once",
    )
    run.set_defaults(command=_run)

    dashboard = commands.add_parser(
        "dashboard",
        help="open optuna-dashboard on a study storage",
        description="Serve optuna-dashboard on the studies of a storage, with their heatmaps; stop it with Ctrl-C.",
    )
    dashboard.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help="the storage `run` wrote: an Optuna storage URL or a journal file path (default: %(default)s)",
    )
    dashboard.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0 serves other machines too (default: %(default)s, this machine only)",
    )
    dashboard.add_argument("--port", type=_positive, default=8080, help="port to listen on (default: %(default)s)")
    dashboard.add_argument(
        "--artifact-dir",
        help="folder of the trials' heatmaps, if it was moved (default: the folder the studies recorded, "
        "else the one beside the storage)",
    )
    dashboard.set_defaults(command=_dashboard)

    best = commands.add_parser("best", help="print a study's best configuration")
    best.add_argument("--storage", default=DEFAULT_STORAGE)
    best.add_argument("--study-name", required=True)
    best.add_argument("--json", action="store_true", help="print JSON")
    best.set_defaults(command=_best)
    return parser


def _run(args: argparse.Namespace) -> int:
    import studies
    from explainers import get_explainer
    from metrics import METRICS

    from ._device import resolve_device
    from ._tune import tune

    preset = studies.model_preset(
        args.model or studies.DEFAULT_PRESET,
        weights=args.weights,
        input_size=args.input_size,
        mean=args.mean,
        std=args.std,
        num_classes=args.num_classes,
    )
    metric_names = [name.strip() for name in (args.objectives or args.metric).split(",") if name.strip()]
    for name in metric_names:
        if name not in METRICS:
            raise CliError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}")
    repeated = sorted({name for name in metric_names if metric_names.count(name) > 1})
    if repeated:
        raise CliError(f"--objectives names {', '.join(repeated)} more than once; give each metric once")
    classes = (
        None
        if args.explainers == "all"
        else [get_explainer(name.strip()) for name in args.explainers.split(",") if name.strip()]
    )
    metric_kwargs = _objective_settings(preset, metric_names, args)
    if args.data is not None and not Path(args.data).is_dir():
        raise CliError(f"data folder {args.data} does not exist; pass --data with a folder of images")
    given = {"n_trials": args.n_trials, "n_samples": args.n_samples, "batch_size": args.batch_size}
    settings = {**preset.defaults, **{k: v for k, v in given.items() if v is not None}}
    check_storage(args.storage)  # a bad URL, a corrupt file or an unreachable server fails here, before any work
    inputs, labels = preset.load_data(args.data, _policy.samples_to_load(settings["n_samples"]))
    targets = args.targets or ("label" if labels is not None else "prediction")
    if targets == "label" and labels is None:
        raise CliError(
            f"--targets label needs labelled data, but {args.data or 'the default data'} has no labels; "
            "pass --data with one subfolder per class, or --targets prediction"
        )
    settings["n_samples"] = _policy.tuned_on(settings["n_samples"], len(inputs), explicit=args.n_samples is not None)
    n_tune, n_held = _policy.split_sizes(len(inputs), settings["n_samples"])
    if args.n_samples is not None and args.n_samples > n_tune:
        print(
            f"--n-samples {args.n_samples} is more than the data holds: tuning on all {n_tune} samples, "
            f"{n_held} held out",
            file=sys.stderr,
        )
    device = resolve_device(args.device)
    model = preset.load_model(device=device, seed=args.seed)  # the weights are bound in the preset
    if targets == "label":
        _check_labels(model, inputs, labels)
    study_name = args.study_name or _policy.study_name(preset.name, metric_names, classes)
    print(f"model {preset.name}: {preset.description}", file=sys.stderr)
    print(
        f"study {study_name!r} on {mask_url(args.storage)}: {settings['n_trials']} trials, "
        f"{n_tune} samples ({n_held} held out), metric {', '.join(metric_names)}"
        + (f" ({', '.join(f'{k}={v}' for k, v in metric_kwargs.items())})" if metric_kwargs else ""),
        file=sys.stderr,
    )

    data = (inputs, labels) if targets == "label" and labels is not None else inputs
    result = tune(
        classes,
        model,
        data,
        metric=metric_names if len(metric_names) > 1 else metric_names[0],
        n_trials=settings["n_trials"],
        n_samples=settings["n_samples"],
        sampler=args.sampler,
        pruner=args.pruner,
        storage=args.storage,
        study_name=study_name,
        seed=args.seed,
        device=device,
        batch_size=settings["batch_size"],
        timeout=args.timeout,
        show_progress_bar=not args.no_progress,
        heartbeat_interval=args.heartbeat,
        metric_kwargs=metric_kwargs,
        explainer_kwargs={"low": preset.low, "high": preset.high, "zennit_canonizers": preset.canonizers() or None},
    )
    if args.no_report:
        print(f"best so far: {_best_line(_policy.best_configuration(result.study))}")
    else:
        from ._report import write_report

        table = write_report(result, model, Path(args.out), study_name=study_name, storage=args.storage)
        print(_readable(table).to_string())
        _print_details(result)
        print(f"\nresults in {Path(args.out).resolve()}")
    print(f"open the dashboard: python -m tuner dashboard --storage {mask_url(args.storage)}")
    return 0


def _check_labels(model: Any, inputs: Any, labels: Any) -> None:
    """A folder's class indices (its subfolders in sorted order) must be outputs of the model."""
    import torch

    device = next(model.parameters(), torch.empty(0)).device
    try:
        with torch.no_grad():
            n_outputs = model(inputs[:1].to(device)).shape[-1]
    except RuntimeError:
        return  # inputs the model rejects: tune() says why in one line
    if int(labels.max()) >= n_outputs:
        raise CliError(
            f"the data has {int(labels.max()) + 1} classes but the model has {n_outputs} outputs; "
            "pass --targets prediction, or --num-classes with a matching head"
        )


def _readable(table: pd.DataFrame) -> pd.DataFrame:
    """The summary for a terminal: numbers to 4 places, parameters as k=v; the CSV keeps everything."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if value != value else f"{value:.4f}"
        if isinstance(value, tuple):
            return " / ".join(f"{v:.4f}" for v in value)
        if isinstance(value, dict):
            return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
        return "" if value is None else str(value)

    return table.drop(columns=["configuration"], errors="ignore").apply(lambda column: column.map(cell))


def _print_details(result: TuneResult) -> None:
    """The Pareto front and the chosen rules in words."""
    if result.multi_objective:
        print("\nPareto front (choose with TuneResult.choose(index=...) or weights=...):")
        print(_readable(result.pareto_front()).to_string())
    described = result.best_explainer.describe()
    if described:
        print(f"\nbest rules per layer group:\n{described}")


def _load_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage of a read-only command: one that does not exist is an error, never created."""
    check_storage(url, must_exist=True)
    return open_storage(url, heartbeat_interval=None)


def _best(args: argparse.Namespace) -> int:
    storage = _load_storage(args.storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if args.study_name not in names:
        raise CliError(
            f"no study {args.study_name!r} in {mask_url(args.storage)}; studies there: {', '.join(names) or 'none'}"
        )
    config = _policy.best_configuration(optuna.load_study(study_name=args.study_name, storage=storage))
    print(json.dumps(config, indent=2) if args.json else _best_line(config))
    return 0


def _best_line(config: dict) -> str:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in config["params"].items())
    values = config["value"] if isinstance(config["value"], (list, tuple)) else [config["value"]]
    return (
        f"{config['explainer']}({params}): {config['metric']} = {', '.join(f'{v:.4f}' for v in values)} "
        f"(trial {config['trial']})"
    )


def _dashboard(args: argparse.Namespace) -> int:
    from optuna_dashboard import run_server

    storage = _load_storage(args.storage)
    directory = Path(args.artifact_dir) if args.artifact_dir else _recorded_artifact_dir(storage, args.storage)
    print(
        f"optuna-dashboard on http://{args.host}:{args.port} (storage {mask_url(args.storage)}, artifacts {directory})",
        file=sys.stderr,
    )
    try:
        run_server(storage, host=args.host, port=args.port, artifact_store=artifact_store(directory))
    except KeyboardInterrupt as interrupt:
        if isinstance(interrupt, Terminated):
            raise
        print("dashboard stopped", file=sys.stderr)  # Ctrl-C is how a dashboard is closed: no trial was running
    return 0


def _recorded_artifact_dir(storage: optuna.storages.BaseStorage, url: str) -> Path:
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if "artifact_dir" in summary.user_attrs:
            return Path(summary.user_attrs["artifact_dir"])
    return artifact_dir_for(url)


if __name__ == "__main__":
    sys.exit(main())
