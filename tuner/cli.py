"""The command line: ``python -m tuner run|dashboard|best`` (installed as ``lrp-tuner``).

Parsing and printing only: what a run decides (samples tuned on and held out, the study's name, the best
trial) is :mod:`tuner._policy`'s, shared with ``tune()``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from . import _policy
from ._cli_parser import EXIT_BAD_INPUT
from ._cli_parser import parser as _parser
from ._interrupt import RECEIVED
from ._phases import phase, recording
from ._result import TuneResult
from ._storage import (
    check_storage,
    mask_url,
    open_storage,
    recorded_artifact_dir,
    redact,
)

EXIT_TERMINATED = 128 + signal.SIGTERM


class CliError(Exception):
    """Bad input: printed as one line, exit code 2, nothing created."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C: Optuna marks the running trial failed at once (not after the heartbeat)."""


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
        command = {"run": _run, "dashboard": _dashboard, "best": _best}[args.command]  # looked up per call
        code = command(args)
        return _interrupted(RECEIVED[-1]) if RECEIVED else code  # a signal whose exception Python swallowed
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
        RECEIVED.clear()  # a later tune() in this process must not see this command's signals


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
    threading.excepthook = threading.__excepthook__ if verbose else _thread_error_line
    if not verbose:
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", module=r"(optuna|matplotlib)(\.|$)")


def _thread_error_line(args: threading.ExceptHookArgs) -> None:
    """An error in a background thread (Optuna's heartbeat finding the database locked while a trial is being
    failed at Ctrl-C) as one warning line, not a traceback."""
    message = str(args.exc_value).strip().splitlines()[0] if str(args.exc_value).strip() else ""
    name = args.thread.name if args.thread is not None else "a thread"
    print(f"warning: {name}: {type(args.exc_value).__name__}: {message}", file=sys.stderr)


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


def _without_traceback(record: logging.LogRecord) -> bool:
    record.exc_info, record.exc_text = None, None
    return True


def _not_interrupted(record: logging.LogRecord) -> bool:
    """No record of a trial stopped by Ctrl-C or SIGTERM: main's one line says so."""
    return not (record.exc_info and _interruption(record.exc_info[1]) is not None)  # type: ignore[arg-type]


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


def _run(args: argparse.Namespace) -> int:
    """A study and its report, each phase named as it starts (stderr) and timed at the end."""
    with recording(None if args.no_progress else sys.stderr) as times:
        code = _run_phases(args)
    print(times.summary(), file=sys.stderr)
    return code


def _run_phases(args: argparse.Namespace) -> int:
    import studies
    from explainers import get_explainer
    from metrics import metric_class

    from ._device import resolve_device
    from ._panel import check_panel
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
        metric_class(name)  # an unknown name: one line with the valid names and the closest one
    repeated = sorted({name for name in metric_names if metric_names.count(name) > 1})
    if repeated:
        raise CliError(f"--objectives names {', '.join(repeated)} more than once; give each metric once")
    classes = (
        None
        if args.explainers == "all"
        else [get_explainer(name.strip()) for name in args.explainers.split(",") if name.strip()]
    )
    metric_kwargs = _objective_settings(preset, metric_names, args)
    check_panel(args.panel)
    if args.data is not None and not Path(args.data).is_dir():
        raise CliError(f"data folder {args.data} does not exist; pass --data with a folder of images")
    given = {"n_trials": args.n_trials, "n_samples": args.n_samples, "batch_size": args.batch_size}
    settings = {**preset.defaults, **{k: v for k, v in given.items() if v is not None}}
    check_storage(args.storage)  # a bad URL, a corrupt file or an unreachable server fails here, before any work
    with phase("model and data"):
        inputs, labels = preset.load_data(args.data, _policy.samples_to_load(settings["n_samples"], args.n_holdout))
    targets = args.targets or ("label" if labels is not None else "prediction")
    if targets == "label" and labels is None:
        raise CliError(
            f"--targets label needs labelled data, but {args.data or 'the default data'} has no labels; "
            "pass --data with one subfolder per class, or --targets prediction"
        )
    settings["n_samples"] = _policy.tuned_on(settings["n_samples"], len(inputs), explicit=args.n_samples is not None)
    n_tune, n_held = _policy.split_sizes(len(inputs), settings["n_samples"], args.n_holdout)
    if args.n_samples is not None and args.n_samples > n_tune:
        print(
            f"--n-samples {args.n_samples} is more than the data holds: tuning on all {n_tune} samples, "
            f"{n_held} held out",
            file=sys.stderr,
        )
    device = resolve_device(args.device)
    with phase("model and data"):
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
        n_holdout=n_held,
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
        panel=False if args.no_panel else args.panel,
        explainer_kwargs=_preset_kwargs(preset, classes),
    )
    if args.no_report:
        print(f"best so far: {_best_line(_policy.best_configuration(result.study))}")
    else:
        from ._report import write_report

        table = write_report(
            result, model, Path(args.out), study_name=study_name, storage=args.storage, baselines=not args.no_baselines
        )
        print(_readable(table).to_string())
        _print_statistics(result)
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


def _print_statistics(result: TuneResult) -> None:
    """The best configuration against the defaults and captum's rows on the held-out samples, then the panel."""
    comparisons = result.comparisons()
    if not comparisons.empty:
        n = int(comparisons["n"].iloc[0])
        print(
            f"\nbest configuration vs others on {n} held-out samples (diff = best - other; 95% percentile-bootstrap "
            "CI, 10,000 resamples; paired Wilcoxon p):"
        )
        print(_readable(comparisons.drop(columns=["n"])).to_string(index=False))
    panel = result.panel()
    if not panel.empty:
        print(
            f"\nrobustness panel: held-out scores and ranks under other metrics, "
            f"{panel.attrs['n_samples']} samples, {panel.attrs['seconds']:.1f} s:"
        )
        print(_readable(panel).to_string())
        if panel.attrs["message"]:
            print(panel.attrs["message"])


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


def _preset_kwargs(preset: Any, classes: list[Any] | None) -> dict[str, Any]:
    """The preset's input bounds and canonizers, each passed only where a selected explainer takes it (the
    bounds only matter to the box rule; ``tune()`` refuses a key that no selected class accepts)."""
    from explainers import DEFAULT_EXPLAINERS

    accepted = frozenset().union(*(cls.accepted_kwargs() for cls in classes or DEFAULT_EXPLAINERS))
    kwargs = {"low": preset.low, "high": preset.high, "zennit_canonizers": preset.canonizers() or None}
    return {name: value for name, value in kwargs.items() if name in accepted}


def _best_line(config: dict) -> str:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in config["params"].items())
    values = config["value"] if isinstance(config["value"], (list, tuple)) else [config["value"]]
    return (
        f"{config['explainer']}({params}): {config['metric']} = {', '.join(f'{v:.4f}' for v in values)} "
        f"(trial {config['trial']})"
    )


def _dashboard(args: argparse.Namespace) -> int:
    from optuna_dashboard import run_server

    from ._dashboard import ServedArtifactStore, check_artifact_dir

    storage = _load_storage(args.storage)
    directory = Path(args.artifact_dir) if args.artifact_dir else _recorded_artifact_dir(storage, args.storage)
    print(
        f"optuna-dashboard on http://{args.host}:{args.port} (storage {mask_url(args.storage)}, artifacts {directory})",
        file=sys.stderr,
    )
    warning = check_artifact_dir(directory)
    if warning:
        print(warning, file=sys.stderr)
    previous = {sig: signal.signal(sig, _stop_dashboard) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:  # the folder is never created here; a missing file is a 404 (warned once, or above)
        store = ServedArtifactStore(directory, warned=warning is not None)
        run_server(storage, host=args.host, port=args.port, artifact_store=store)
    except KeyboardInterrupt as interrupt:
        if isinstance(interrupt, Terminated):
            raise
        print("dashboard stopped", file=sys.stderr)  # Ctrl-C is how a dashboard is closed: no trial was running
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _stop_dashboard(signum: int, frame: Any) -> None:
    """Ctrl-C or SIGTERM on the dashboard: one line and exit. Not an exception: the web server (wsgiref) catches an
    exception raised while it answers a request, prints its traceback and serves on. The dashboard runs no trial,
    and a storage write in progress is a transaction the database rolls back."""
    print("dashboard stopped", file=sys.stderr, flush=True)
    os._exit(EXIT_TERMINATED if signum == signal.SIGTERM else 0)


def _recorded_artifact_dir(storage: optuna.storages.BaseStorage, url: str) -> Path:
    """The artifact folder the storage's studies recorded (relative to a storage file), else the one beside it."""
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if "artifact_dir" in summary.user_attrs:
            return recorded_artifact_dir(url, summary.user_attrs["artifact_dir"])
    return recorded_artifact_dir(url, None)


if __name__ == "__main__":
    sys.exit(main())
