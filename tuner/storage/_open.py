"""Study storages (SQLite, PostgreSQL, journal file), their artifact folders, and masked URLs."""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend

from registry import first_line

#: a run's outputs share one folder: the study (with its heatmaps beside it, ``tuner-artifacts/``) and the report
OUTPUT_FOLDER = "lrp-tuner-out"
DEFAULT_STORAGE = f"sqlite:///{OUTPUT_FOLDER}/tuner.db"
#: the default storage of earlier versions, in the working folder
FORMER_DEFAULT_STORAGE = "sqlite:///tuner.db"
JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")


class StorageError(ValueError):
    """The storage URL is malformed or the database cannot be reached."""


def mask_url(url: str | None) -> str | None:
    """``url`` with its password replaced by ``***`` (safe to print, log or store), whatever characters the
    password holds (``@``, ``:``, ``/``, spaces, percent escapes): the URL is parsed, not pattern-matched. The
    user information ends at the last ``@`` before the query; the password is what follows the user's ``:``.
    A ``password=`` query parameter is masked too."""
    if url is None or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    base, question, query = rest.partition("?")
    if "@" in base:
        userinfo, host = base.rsplit("@", 1)
        user, colon, _ = userinfo.partition(":")
        base = f"{user}:***@{host}" if colon else f"{userinfo}@{host}"
    if question:
        fields = [field.partition("=") for field in query.split("&")]
        query = "&".join(
            f"{key}={'***' if key.lower() == 'password' else value}" if equals else key for key, equals, value in fields
        )
    return f"{scheme}://{base}{question}{query}"


def redact(text: str, url: str | None) -> str:
    """``text`` (an error message, a log line) with ``url``'s password removed wherever it appears, raw or
    percent-decoded, and the URL itself masked."""
    if url is None:
        return text
    text = text.replace(url, mask_url(url) or "")
    return _remove(text, _userinfo_parts(url)[1:])


def _remove(text: str, parts: list[str]) -> str:
    """``text`` with each of ``parts``, raw or percent-decoded, replaced by ``***``."""
    for part in parts:
        for form in {part, urllib.parse.unquote(part)}:
            if len(form) >= 3:  # a shorter one would blank ordinary letters; the URL itself is masked above
                text = text.replace(form, "***")
    return text


def _userinfo(url: str) -> str:
    """What comes before the last ``@`` of the URL's authority and path (the query aside); empty if nothing."""
    base = url.split("://", 1)[1].partition("?")[0] if "://" in url else ""
    return base.rsplit("@", 1)[0] if "@" in base else ""


def _userinfo_parts(url: str) -> list[str]:
    """The user name and the password of ``url`` (empty strings where it has none)."""
    user, _, password = _userinfo(url).partition(":")
    return [user, password]


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
        _check_journal(journal)
        journal.parent.mkdir(parents=True, exist_ok=True)
        try:
            return JournalStorage(JournalFileBackend(str(journal)))
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as error:
            raise StorageError(f"journal file {journal} is corrupt ({_first_line(error)}); {_MOVE_AWAY}") from None
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
                raise StorageError(f"cannot open storage {mask_url(url)}: {_first_line(error, url)}") from None
            time.sleep(0.5 * (attempt + 1))  # another worker created the tables at the same moment
        except Exception as error:  # sqlalchemy raises many types for bad URLs and unreachable servers
            raise StorageError(f"cannot open storage {mask_url(url)}: {_first_line(error, url)}") from None
    return RDBStorage(url, engine_kwargs=_engine_kwargs(url), **heartbeat)


def check_storage(url: str, *, must_exist: bool = False) -> None:
    """Fail now, with StorageError, if ``url`` cannot work; creates nothing (no file, no tables). With
    ``must_exist`` (the read-only commands) a SQLite or journal file that does not exist is an error too."""
    journal = _journal_path(url)
    if journal is not None:
        if must_exist and not journal.is_file():
            raise StorageError(f"no study storage at {journal}; run `python -m tuner run` first or pass --storage")
        _check_journal(journal)
        return
    _require_url(url)
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :]).expanduser()
        if must_exist and not path.is_file():
            raise StorageError(f"no study storage at {url}; run `python -m tuner run` first or pass --storage")
        _check_sqlite(path)
        return
    try:
        engine = sqlalchemy.create_engine(url, **_engine_kwargs(url))
        with engine.connect():
            pass
        engine.dispose()
    except Exception as error:  # bad driver name, unreachable server, refused login
        raise StorageError(f"cannot open storage {mask_url(url)}: {_first_line(error, url)}") from None


_MOVE_AWAY = "move it away or pass another --storage"


def _check_journal(path: Path) -> None:
    """An existing journal file must start with an Optuna journal record (JSON), else it is named as corrupt."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb") as handle:
        first = handle.readline()
    try:
        record = json.loads(first)
    except (ValueError, UnicodeDecodeError):
        record = None
    if not isinstance(record, dict) or "op_code" not in record:
        raise StorageError(f"journal file {path} is corrupt or not an Optuna journal; {_MOVE_AWAY}")


def _check_sqlite(path: Path) -> None:
    """An existing SQLite file must be a database; read-only, so nothing is created or changed."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            connection.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as error:
        raise StorageError(f"SQLite file {path} is corrupt or not a database ({error}); {_MOVE_AWAY}") from None


def _require_url(url: str) -> None:
    if "://" not in url:
        raise StorageError(
            f"storage {mask_url(url)!r} is not a URL; use e.g. sqlite:///tuner.db, "
            "postgresql://user:password@host/db or a journal file path ending in .log"
        )
    if _raw_userinfo(url):
        # a driver splits such a URL elsewhere than mask_url does and would print a fragment of the password
        raise StorageError(
            f"the password in storage {mask_url(url)} holds a raw '@', '/' or space; percent-encode it "
            "(%40, %2F, %20), e.g. with urllib.parse.quote(password, safe='')"
        )


def _raw_userinfo(url: str) -> bool:
    """Whether a server URL's user information holds a character a URL parser splits on (``@``, ``/``, space)."""
    if url.startswith("sqlite:"):
        return False
    userinfo = _userinfo(url)
    return ":" in userinfo and any(character in userinfo for character in "@/ ")


def _first_line(error: Exception, url: str | None = None) -> str:
    """The first line of a driver's message, with every part of the URL's user information removed."""
    line = redact(first_line(error), url)
    return line if url is None else _remove(line, sorted(_userinfo_parts(url), key=len, reverse=True))


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
    local = _storage_file(url)
    if local is not None:
        return local.with_name(f"{local.stem}-artifacts")
    return Path("lrp-tuner-artifacts").resolve()


def _storage_file(url: str | None) -> Path | None:
    if url is None:
        return None
    local = _journal_path(url) or (Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None)
    return None if local is None else local.expanduser().resolve()


def stored_artifact_dir(url: str | None, directory: Path) -> str:
    """``directory`` as a study records it: relative to the storage file's folder where the storage is a file (so a
    storage moved or copied with its artifact folder still finds it), else absolute."""
    storage_file = _storage_file(url)
    if storage_file is not None:
        try:
            return str(directory.resolve().relative_to(storage_file.parent))
        except ValueError:
            pass
    return str(directory.resolve())


def recorded_artifact_dir(url: str | None, recorded: str | None) -> Path:
    """The artifact folder a study recorded, read back: a relative path is beside the storage file; a recorded
    folder that no longer exists gives way to the one beside the storage (a storage copied with its folder)."""
    beside = artifact_dir_for(url)
    if not recorded:
        return beside
    path = Path(recorded)
    storage_file = _storage_file(url)
    if not path.is_absolute():
        path = (storage_file.parent if storage_file is not None else Path.cwd()) / path
    return path if path.is_dir() or not beside.is_dir() else beside


def artifact_store(directory: Path) -> optuna.artifacts.FileSystemArtifactStore:
    directory.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(str(directory))


def former_default_note(url: str) -> str | None:
    """A line for a user of the default storage who has a study in the former default (``./tuner.db``), which
    this run would not resume; None otherwise."""
    former, current = _storage_file(FORMER_DEFAULT_STORAGE), _storage_file(DEFAULT_STORAGE)
    if url != DEFAULT_STORAGE or former is None or current is None or current.exists() or not former.is_file():
        return None
    return (
        f"note: the default storage is now {DEFAULT_STORAGE}; to resume the studies in {former.name}, "
        f"pass --storage {FORMER_DEFAULT_STORAGE}"
    )
