"""What optuna-dashboard shows of a study: the result files as study artifacts, the result table in the study's
note, and an artifact store that answers a missing file with 404 (and one warning) instead of HTTP 500."""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import optuna
import pandas as pd
from optuna.artifacts.exceptions import ArtifactNotFound

from ..search._study import save_note, study_note
from ._notes import result_note

if TYPE_CHECKING:
    from ._result import TuneResult

logger = logging.getLogger("tuner")
ARTIFACTS_ATTR_PREFIX = "artifacts:"  # where Optuna records an artifact's metadata (optuna.artifacts._upload)


def publish(result: TuneResult, table: pd.DataFrame, files: Sequence[Path]) -> None:
    """The study's note with the result table and the rule behind ``best.json``, and ``files`` as study
    artifacts (where the study stores artifacts): a file already there with the same content is skipped, one of
    the same name with other content is replaced, so re-running a report piles up nothing."""
    study = result.study
    n_samples = int(study.user_attrs.get("n_samples", len(result.objective.inputs)))
    save_note(study, study_note(study, n_samples) + "\n\n" + result_note(result, table))
    store, storage = result.objective.artifacts, result.objective.storage
    if store is None or storage is None:
        return
    for path in files:
        try:
            upload_once(study, storage, store, path)
        except OSError as error:
            logger.warning("%s not stored in the dashboard: %s", path.name, error)


def study_artifacts(storage: optuna.storages.BaseStorage, study: optuna.Study) -> list[dict[str, Any]]:
    """The study's artifact records (a deleted one, recorded as null by the dashboard, left out)."""
    attrs = storage.get_study_system_attrs(study._study_id)
    records = [json.loads(value) for key, value in attrs.items() if key.startswith(ARTIFACTS_ATTR_PREFIX)]
    return [record for record in records if record]


def upload_once(study: optuna.Study, storage: optuna.storages.BaseStorage, store: Any, path: Path) -> bool:
    """Upload ``path`` as a study artifact unless the same content is there under its name; an older version of
    that name is removed first. True when something was uploaded."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for record in study_artifacts(storage, study):
        if record.get("filename") != path.name:
            continue
        if _digest(store, record["artifact_id"]) == digest:
            return False
        try:
            store.remove(record["artifact_id"])
        except ArtifactNotFound:
            pass
        storage.set_study_system_attr(study._study_id, ARTIFACTS_ATTR_PREFIX + record["artifact_id"], json.dumps(None))
    mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".csv":
        mimetype = "text/csv"
    optuna.artifacts.upload_artifact(
        artifact_store=store, file_path=str(path), study_or_trial=study, storage=storage, mimetype=mimetype
    )
    return True


def _digest(store: Any, artifact_id: str) -> str | None:
    try:
        with store.open_reader(artifact_id) as reader:
            return hashlib.sha256(reader.read()).hexdigest()
    except (ArtifactNotFound, OSError):
        return None


class ServedArtifactStore:
    """The dashboard's view of an artifact folder: never creates it; a missing file is a 404 with one warning line
    (naming the folder and ``--artifact-dir``) instead of optuna-dashboard's HTTP 500 and traceback."""

    def __init__(self, directory: Path, *, warned: bool = False):
        self.directory = directory
        self.store = optuna.artifacts.FileSystemArtifactStore(str(directory))
        self.warned = warned  # the folder's state was already named (``check_artifact_dir``)

    def open_reader(self, artifact_id: str) -> BinaryIO:
        try:
            return self.store.open_reader(artifact_id)
        except (ArtifactNotFound, OSError):
            if not self.warned:
                self.warned = True
                print(
                    f"warning: artifact {artifact_id} is not in {self.directory}; "
                    "pass --artifact-dir to point the dashboard elsewhere",
                    file=sys.stderr,
                )
            from bottle import HTTPError

            raise HTTPError(404, "artifact file not found") from None

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)  # an upload from the dashboard's page
        self.store.write(artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self.store.remove(artifact_id)


def check_artifact_dir(directory: Path) -> str | None:
    """One warning line when the dashboard's artifact folder is missing or empty, else None."""
    if not directory.is_dir():
        state = "does not exist"
    elif not any(directory.iterdir()):
        state = "is empty"
    else:
        return None
    return (
        f"warning: artifact folder {directory} {state}: heatmaps and result files will not show; "
        "pass --artifact-dir to point elsewhere"
    )
