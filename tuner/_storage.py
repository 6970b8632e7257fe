"""Study storages (SQLite, PostgreSQL, journal file), their artifact folders, and masked URLs."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend

DEFAULT_STORAGE = "sqlite:///tuner.db"
JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")


class StorageError(ValueError):
    """The storage URL is malformed or the database cannot be reached."""


def mask_url(url: str | None) -> str | None:
    """``url`` with any password replaced by ``***`` (safe to print, log or store)."""
    if url is None:
        return None
    url = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url, flags=re.IGNORECASE)


def open_storage(
    url: str | None, *, heartbeat_interval: int | None = 60, grace_period: int | None = None, max_retry: int = 3
):
    """An Optuna storage for ``url``; None keeps the study in memory.

    RDB storages (SQLite, PostgreSQL, MySQL) get heartbeats, and a trial whose worker died is failed and
    re-queued by Optuna's RetryHeartbeatStaleTrialCallback. A path ending in .log/.journal (or ``journal:PATH``)
    is a journal file that several processes on one machine can share without a server.
    """
    if url is None:
        return None
    journal = _journal_path(url)
    if journal is not None:
        journal.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(journal)))
    _require_url(url)
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)
    heartbeat: dict[str, Any] = {}
    if heartbeat_interval:
        heartbeat = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period or 2 * heartbeat_interval,
            "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
        }
    for attempt in range(3):
        try:
            return RDBStorage(url, engine_kwargs=_engine_kwargs(url), **heartbeat)
        except sqlalchemy.exc.DatabaseError as error:
            if "already exists" not in str(error) and "duplicate" not in str(error):
                raise StorageError(f"cannot open storage {mask_url(url)}: {_first_line(error)}") from None
            time.sleep(0.5 * (attempt + 1))  # another worker created the tables at the same moment
        except Exception as error:  # sqlalchemy raises many types for bad URLs and unreachable servers
            raise StorageError(f"cannot open storage {mask_url(url)}: {_first_line(error)}") from None
    return RDBStorage(url, engine_kwargs=_engine_kwargs(url), **heartbeat)


def check_storage(url: str) -> None:
    """Fail now, with StorageError, if ``url`` cannot work; creates nothing (no file, no tables)."""
    if _journal_path(url) is not None:
        return
    _require_url(url)
    if url.startswith("sqlite:///"):
        return
    try:
        engine = sqlalchemy.create_engine(url, **_engine_kwargs(url))
        with engine.connect():
            pass
        engine.dispose()
    except Exception as error:  # bad driver name, unreachable server, refused login
        raise StorageError(f"cannot open storage {mask_url(url)}: {_first_line(error)}") from None


def _require_url(url: str) -> None:
    if "://" not in url:
        raise StorageError(
            f"storage {mask_url(url)!r} is not a URL; use e.g. sqlite:///tuner.db, "
            "postgresql://user:password@host/db or a journal file path ending in .log"
        )


def _first_line(error: Exception) -> str:
    return (mask_url(str(error).splitlines()[0]) or "") if str(error) else type(error).__name__


def _engine_kwargs(url: str) -> dict:
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    return {}


def _journal_path(url: str) -> Path | None:
    if url.startswith("journal:"):
        return Path(url[len("journal:") :]).expanduser()
    if "://" not in url and url.endswith(JOURNAL_SUFFIXES):
        return Path(url).expanduser()
    return None


def artifact_dir_for(url: str | None) -> Path:
    """Where a study's heatmaps go: beside the SQLite or journal file, else ./lrp-tuner-artifacts."""
    if url is not None:
        local = _journal_path(url) or (Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None)
        if local is not None:
            local = local.expanduser().resolve()
            return local.with_name(f"{local.stem}-artifacts")
    return Path("lrp-tuner-artifacts").resolve()


def artifact_store(directory: Path) -> optuna.artifacts.FileSystemArtifactStore:
    directory.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(str(directory))
