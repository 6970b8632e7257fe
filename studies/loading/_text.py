"""Text files for a study: one text a line (``.txt``, no labels), or ``text`` and ``label`` columns (``.csv``,
``.jsonl``); tokenized into one (N, L) tensor of ids where a negative id is padding."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from .._errors import DataError

TEXT_EXTENSIONS = (".txt", ".csv", ".jsonl")
#: tokens per text at most (longer texts are cut; fewer where the model has fewer positions): the length the
#: attribution benchmarks measure
MAX_TOKENS = 128


def read_texts(path: Path) -> tuple[list[str], list[str] | None]:
    """The texts of ``path`` and their labels as written (None for a ``.txt`` file)."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}; pass --data with a .txt, .csv or .jsonl file")
    suffix = path.suffix.lower()
    if suffix not in TEXT_EXTENSIONS:
        raise DataError(f"{path.name}: a text model reads {', '.join(TEXT_EXTENSIONS)} files, not {suffix or 'this'}")
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    if suffix == ".txt":
        texts = [line.strip() for line in content.splitlines() if line.strip()]
        labels = None
    else:
        rows = _csv_rows(path, content) if suffix == ".csv" else _jsonl_rows(path, content)
        texts, labels = [str(row["text"]) for row in rows], [str(row["label"]) for row in rows]
    if not texts:
        raise DataError(f"{path} holds no text")
    return texts, labels


def _csv_rows(path: Path, content: str) -> list[Mapping[str, object]]:
    rows: list[Mapping[str, object]] = list(csv.DictReader(io.StringIO(content)))
    _check_columns(path, rows[0].keys() if rows else [])
    return rows


def _jsonl_rows(path: Path, content: str) -> list[Mapping[str, object]]:
    rows = []
    for number, line in enumerate(content.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number} is not JSON ({error.msg}); write one object a line") from None
            _check_columns(path, row.keys() if isinstance(row, dict) else [], number)
            rows.append(row)
    return rows


def _check_columns(path: Path, columns: object, line: int | None = None) -> None:
    missing = [name for name in ("text", "label") if name not in columns]  # type: ignore[operator]
    if missing:
        where = f"{path}:{line}" if line else str(path)
        raise DataError(f"{where} has no {' or '.join(missing)} field; each row needs 'text' and 'label'")


def label_indices(labels: Sequence[str], label2id: Mapping[str, int] | None, n_classes: int) -> Tensor:
    """Class indices of ``labels``: integers as written, else names through the model's ``label2id``."""
    try:
        indices = [int(label) for label in labels]
    except ValueError:
        known = dict(label2id or {})
        unknown = sorted({label for label in labels if label not in known})
        if unknown:
            raise DataError(
                f"labels {unknown[:5]} are neither class indices nor names in the model's label2id "
                f"({', '.join(known) or 'none'})"
            ) from None
        indices = [known[label] for label in labels]
    bad = sorted({index for index in indices if not 0 <= index < n_classes})
    if bad:
        raise DataError(f"labels {bad[:5]} are not classes of a model with {n_classes} (0..{n_classes - 1})")
    return torch.tensor(indices, dtype=torch.long)


def token_ids(texts: Sequence[str], tokenize: Callable[[str], list[int]], max_tokens: int = MAX_TOKENS) -> Tensor:
    """(N, L) token ids of ``texts``, each cut at ``max_tokens``, padded on the right with -1 to the longest."""
    encoded = [tokenize(text)[:max_tokens] for text in texts]
    empty = [index for index, ids in enumerate(encoded) if not ids]
    if empty:
        raise DataError(f"texts {empty[:5]} give no tokens; drop empty lines")
    length = max(map(len, encoded))
    ids = torch.full((len(encoded), length), -1, dtype=torch.long)
    for row, values in enumerate(encoded):
        ids[row, : len(values)] = torch.tensor(values, dtype=torch.long)
    return ids
