"""The command line's parser: the three commands, their options with defaults and help, the argument types."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from explainers.attnlrp import TEXT_BASELINES
from metrics import BASELINES

from ..evidence.panel._scoring import DEFAULT_PANEL_BUDGET, DEFAULT_PANEL_MIN_SECONDS
from ..search._strategies import PRUNERS, SAMPLERS
from ..storage._open import DEFAULT_STORAGE, OUTPUT_FOLDER

EXIT_BAD_INPUT = 2


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line (and the hint to --help), not the whole usage."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {number}")
    return number


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


def _panel(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``--panel``: metrics separated by commas, each ``name`` or ``name:key=value[:key=value...]``."""
    entries = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, *pairs = item.split(":")
        settings = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise argparse.ArgumentTypeError(f"expected name:key=value in {item!r}, got {pair!r}")
            settings[key.strip()] = _value(value.strip())
        entries.append((name.strip(), settings))
    if not entries:
        raise argparse.ArgumentTypeError("expected at least one metric, e.g. abpc:baseline=zero,morf")
    return entries


def _seconds(value: str) -> float:
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value}")
    return number


def _non_negative_number(value: str) -> float:
    number = float(value)
    if not (math.isfinite(number) and number >= 0):
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, got {value}")
    return number


def _floats(value: str) -> list[float]:
    try:
        return [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {value!r}") from None


def invoked_as() -> str:
    """The command as the user typed it, for error lines: ``python -m tuner`` or the installed ``lrp-tuner``."""
    return "python -m tuner" if Path(sys.argv[0]).name == "__main__.py" else "lrp-tuner"


def parser() -> argparse.ArgumentParser:
    """The parser of ``python -m tuner``; ``args.command`` names the command to run."""
    parser = _OneLineParser(
        prog=invoked_as(), description="Find the most faithful LRP configuration for a model with an Optuna study."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run (or resume) a study")
    run.add_argument(
        "--model",
        help="a preset (default: the embedded digits ResNet), any torchvision classifier (efficientnet_b0, "
        "vit_b_16, ...), your own: package.module:callable or path/to/file.py:callable returning an nn.Module, or a "
        "Hugging Face model: hf:PATH_OR_ID (a save_pretrained folder or the local cache)",
    )
    run.add_argument(
        "--weights",
        help="DEFAULT or a torchvision weights name (IMAGENET1K_V2), a state-dict PATH, or none (random; for hf: "
        "drawn from the config with --seed); "
        "default: the preset's, torchvision's DEFAULT, or the callable's own initialisation",
    )
    run.add_argument("--num-classes", type=_positive, help="outputs of the model's head (passed as num_classes=)")
    run.add_argument("--input-size", type=_positive, help="crop size in pixels (default: from the weights, or 224)")
    run.add_argument("--mean", type=_floats, help="normalisation mean per channel, e.g. 0.5,0.5,0.5 (one: grayscale)")
    run.add_argument("--std", type=_floats, help="normalisation std per channel, e.g. 0.25,0.25,0.25")
    run.add_argument(
        "--data",
        help="image folder (flat or one subfolder per class), preprocessed for the model; for an hf: text model a "
        ".txt file (one text a line) or a .csv/.jsonl file with text and label; default: the preset's data, or "
        "sample photographs",
    )
    run.add_argument(
        "--masks",
        help="evidence masks for --data: one PNG per image at the same relative path (non-zero pixels are the "
        "evidence), resized and cropped as its image; adds localisation metrics to the verdict",
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
        choices=list(dict.fromkeys((*BASELINES, *TEXT_BASELINES))),
        help="what a perturbed feature becomes (default: the preset's, a blur for images, the mask token for text; "
        "see docs/objective.md); a Hugging Face text model takes mask, unk or zero",
    )
    run.add_argument(
        "--metric-kwargs",
        type=_key_values,
        default={},
        metavar="KEY=VALUE,...",
        help="the metric's settings, e.g. n_steps=20,blur_sigma=2; part of the study: resuming with others is refused",
    )
    panel = run.add_mutually_exclusive_group()
    panel.add_argument(
        "--panel",
        type=_panel,
        metavar="METRIC[:KEY=VALUE...],...",
        help="the robustness panel the report re-scores defaults, bests and captum's rows with on the held-out "
        "samples: metrics separated by commas, settings after colons, e.g. "
        "abpc:baseline=zero,abpc:baseline=blur:blur_sigma=2,morf (default: AbPC with zero, min and blur "
        "baselines, MoRF, faithfulness_correlation, IROF; written to panel.csv)",
    )
    panel.add_argument("--no-panel", action="store_true", help="no robustness panel (as --panel-budget 0)")
    run.add_argument(
        "--panel-budget",
        type=_non_negative_number,
        default=DEFAULT_PANEL_BUDGET,
        metavar="F",
        help="the panel's time: this fraction of the time the trials took (default %(default)s; 0 skips the panel); "
        "it scores held-out samples one at a time until the time is spent",
    )
    run.add_argument(
        "--panel-min-seconds",
        type=_non_negative_number,
        default=DEFAULT_PANEL_MIN_SECONDS,
        metavar="S",
        help="the panel's budget is never less than this (default %(default)s s: a small study gets its whole panel)",
    )
    run.add_argument("--n-trials", type=_positive, help="total finished trials of the study")
    run.add_argument("--n-samples", type=_positive, help="samples every trial scores")
    run.add_argument(
        "--n-holdout",
        type=_non_negative,
        help="samples held out to check the result, never tuned on (default: as many as --n-samples, where the "
        "data holds them; 0 skips the held-out statistics and the panel): fewer make the report faster and its "
        "statistics weaker",
    )
    run.add_argument("--batch-size", type=_positive, help="samples attributed at once")
    run.add_argument(
        "--trials-together",
        type=_positive,
        default=4,
        metavar="N",
        help="trials asked from the sampler at once and scored together, their attributions from one forward pass "
        "(default %(default)s; 1: one at a time, each proposal informed by every earlier result)",
    )
    run.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL or journal file path")
    run.add_argument("--study-name", help="default: <model>-<metric>-<explainers>")
    run.add_argument("--sampler", default="tpe", choices=SAMPLERS.names())
    run.add_argument("--pruner", default="wilcoxon", choices=PRUNERS.names())
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    run.add_argument("--timeout", type=_seconds, help="seconds after which no new trial starts")
    run.add_argument("--out", default=OUTPUT_FOLDER, help="folder for the table, best configuration, heatmaps")
    run.add_argument(
        "--heartbeat",
        type=_positive,
        default=60,
        help="seconds between a worker's heartbeats; "
        "a trial silent for twice as long is failed and retried (RDB storages)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar and no phase lines")
    run.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip the captum reference rows (Saliency, InputXGradient, IntegratedGradients) of the report",
    )
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
    run.set_defaults(command="run")

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
    dashboard.set_defaults(command="dashboard")

    best = commands.add_parser("best", help="print a study's best configuration")
    best.add_argument("--storage", default=DEFAULT_STORAGE)
    best.add_argument("--study-name", required=True)
    best.add_argument("--json", action="store_true", help="print JSON")
    best.set_defaults(command="best")
    return parser
