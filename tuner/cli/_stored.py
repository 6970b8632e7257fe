"""``best`` and ``dashboard``: the commands that read a stored study and never create one."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import optuna

from ..search import _policy
from ..storage._open import (
    check_storage,
    mask_url,
    open_storage,
    recorded_artifact_dir,
)
from ._errors import EXIT_TERMINATED, CliError, Terminated


def _load_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage of a read-only command: one that does not exist is an error, never created."""
    check_storage(url, must_exist=True)
    return open_storage(url, heartbeat_interval=None)


def best(args: argparse.Namespace) -> int:
    storage = _load_storage(args.storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if args.study_name not in names:
        raise CliError(
            f"no study {args.study_name!r} in {mask_url(args.storage)}; studies there: {', '.join(names) or 'none'}"
        )
    config = _policy.best_configuration(optuna.load_study(study_name=args.study_name, storage=storage))
    print(json.dumps(config, indent=2) if args.json else best_line(config))
    return 0


def best_line(config: dict) -> str:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in config["params"].items())
    values = config["value"] if isinstance(config["value"], (list, tuple)) else [config["value"]]
    return (
        f"{config['explainer']}({params}): {config['metric']} = {', '.join(f'{v:.4f}' for v in values)} "
        f"(trial {config['trial']})"
    )


def dashboard(args: argparse.Namespace) -> int:
    from optuna_dashboard import run_server

    from ..evidence._dashboard import ServedArtifactStore, check_artifact_dir

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
