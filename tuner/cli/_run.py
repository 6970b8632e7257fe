"""``run``: a study and its report, each phase named as it starts (stderr) and timed at the end; the tables it
prints."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..inputs._device import resolve_device
from ..search import _policy
from ..search._phases import phase, recording
from ..storage._open import check_storage, former_default_note, mask_url
from . import _options as cli_options
from ._errors import CliError
from ._options import metric_names
from ._stored import best_line


def run(args: argparse.Namespace) -> int:
    """A study and its report, each phase named as it starts (stderr) and timed at the end."""
    with recording(None if args.no_progress else sys.stderr) as times:
        code = _run_phases(args)
    print(times.summary(), file=sys.stderr)
    return code


def _run_phases(args: argparse.Namespace) -> int:
    import studies
    from explainers import get_explainer
    from explainers.engine import keep_freed_memory

    from .._tune import explainer_classes, tune
    from ..evidence.panel._panel import check_panel

    keep_freed_memory()  # this process's attributions reuse freed memory (about 10-15 % faster on a CPU)

    preset = studies.model_preset(
        args.model or studies.DEFAULT_PRESET,
        weights=args.weights,
        input_size=args.input_size,
        mean=args.mean,
        std=args.std,
        num_classes=args.num_classes,
    )
    names = metric_names(args)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise CliError(f"--objectives names {', '.join(repeated)} more than once; give each metric once")
    objective = cli_options.objective(args, preset)  # an unknown metric or setting fails here, in one line
    classes = (
        None
        if args.explainers == "all"
        else [get_explainer(name.strip()) for name in args.explainers.split(",") if name.strip()]
    )
    check_panel(args.panel)
    if args.data is not None and not Path(args.data).exists():
        raise CliError(f"--data {args.data} does not exist; pass a folder of images (a text file for hf: models)")
    if args.masks is not None and args.data is None:
        raise CliError("--masks gives the masks of --data's images; pass --data DIR with it")
    if args.masks is not None and not Path(args.masks).is_dir():
        raise CliError(f"masks folder {args.masks} does not exist; pass --masks with a folder of mask PNGs")
    settings = cli_options.budget_settings(args, preset)
    check_storage(args.storage)  # a bad URL, a corrupt file or an unreachable server fails here, before any work
    note = former_default_note(args.storage)
    if note:
        print(note, file=sys.stderr)
    with phase("model and data"):
        loaded = preset.load_data(
            args.data, _policy.samples_to_load(settings["n_samples"], args.n_holdout), masks_dir=args.masks
        )
    inputs, labels, masks = (*loaded, None) if len(loaded) == 2 else loaded
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
    study_name = args.study_name or _policy.study_name(preset.name, names, classes)
    print(f"model {preset.name}: {preset.description}", file=sys.stderr)
    given, text_baseline = _policy.text_baseline(model, objective.settings())  # a text model's baseline by name
    metric_kwargs = _policy.objective_settings(inputs, given)  # what tune() will use
    if text_baseline is not None:
        metric_kwargs["baseline"] = text_baseline
    print(
        f"study {study_name!r} on {mask_url(args.storage)}: {settings['n_trials']} trials, "
        f"{n_tune} samples ({n_held} held out), metric {', '.join(names)}"
        + (f" ({', '.join(f'{k}={v}' for k, v in metric_kwargs.items())})" if metric_kwargs else ""),
        file=sys.stderr,
    )

    explained = labels if targets == "label" else None  # None: the model's predictions are explained
    data = (inputs, explained, masks)
    result = tune(
        classes,
        model,
        data,
        **cli_options.options(args, objective, settings, n_held),
        study_name=study_name,
        device=device,
        explainer_kwargs=cli_options.preset_kwargs(preset, explainer_classes(classes, model)),
    )
    if args.no_report:
        print(f"best so far: {best_line(_policy.best_configuration(result.study))}")
    else:
        from ..evidence._report import write_report
        from ..evidence._verdict import report_lines

        out = Path(args.out)
        write_report(result, model, out, study_name=study_name, storage=args.storage)
        wide = [str(out.resolve() / name) for name in ("summary.csv", "panel.csv") if (out / name).exists()]
        print("\n".join(report_lines(result, wide)))
    print(f"open the dashboard: python -m tuner dashboard --storage {mask_url(args.storage)}")
    return 0


def _check_labels(model: Any, inputs: Any, labels: Any) -> None:
    """A folder's class indices (its subfolders in sorted order) must be outputs of the model."""
    import torch

    device = resolve_device(None, model)
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
