"""A trial's heatmap stored as an Optuna artifact of the trial: uploaded, or copied from the trial that answered a
repeated configuration. An artifact folder that cannot be written, or a heatmap gone missing, is a warning: it never
fails a trial or blocks a study."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import optuna

from registry import first_line

logger = logging.getLogger("tuner")


def upload_heatmap(
    store: optuna.artifacts.FileSystemArtifactStore, trial: optuna.Trial, path: Path, mimetype: str
) -> None:
    """Store the file at ``path`` as an artifact of ``trial``; a warning where the folder cannot be written."""
    try:
        optuna.artifacts.upload_artifact(
            artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype=mimetype
        )
    except OSError as error:
        logger.warning("heatmap of trial %d not stored: %s", trial.number, first_line(error))


def copy_heatmaps(
    store: optuna.artifacts.FileSystemArtifactStore,
    storage: optuna.storages.BaseStorage | None,
    source: optuna.trial.FrozenTrial,
    trial: optuna.Trial,
) -> bool:
    """Give ``trial`` (a repeated configuration) the heatmaps of ``source``, the trial that answered it; False
    (after a warning that names it) when such a heatmap is missing: a moved, deleted or copied storage."""
    for meta in optuna.artifacts.get_all_artifact_meta(source, storage=storage):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / meta.filename
            try:
                optuna.artifacts.download_artifact(
                    artifact_store=store, artifact_id=meta.artifact_id, file_path=str(path)
                )
            except (optuna.artifacts.exceptions.ArtifactNotFound, OSError) as error:
                logger.warning(
                    "heatmap %s of trial %d is missing (%s); trial %d draws its own",
                    meta.artifact_id,
                    source.number,
                    first_line(error),
                    trial.number,
                )
                return False
            upload_heatmap(store, trial, path, meta.mimetype)
    return True
