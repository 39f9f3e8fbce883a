"""One reader for every container that public data sets come in, shared by every command that reads rows.

A *container* is a file or folder holding one or more JSON-like rows:

==========================  =====================================================================
``*.jsonl``                 one JSON value a line (``Dataset.to_json``); blank lines ignored
``*.jsonl.gz``              the same, gzip'd
``*.json``, ``*.traj``,     a JSON array of rows, or one JSON value (a single row). An array whose
``*.json.gz``               items are chat messages or agent events is *one* row (a bare message list
                            or event stream), not a list of rows
``*.parquet``               Parquet (``Dataset.to_parquet``), read in record batches
a ``save_to_disk`` folder   ``Dataset.save_to_disk`` (``state.json`` + Arrow stream files) or a
                            ``DatasetDict`` (``dataset_dict.json`` + one folder per split); rows are
                            located as ``folder[split]``
==========================  =====================================================================

Everything streams: rows are produced one at a time (Parquet and Arrow in record batches), so a
container of any size is read in bounded memory. Rows are numbered from 0 in container order, and
`iter_rows` can read any contiguous range of them, which is how work is split across processes.

API: `find_containers(paths)`, `count_rows(path)`, `iter_rows(path, start, stop) -> (location, row)`,
`read_rows(path, start, stop) -> Row`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trajectories.errors import SrlSweError

SUFFIXES = (".traj.json", ".traj", ".jsonl.gz", ".jsonl", ".json.gz", ".json", ".parquet")
#: Files that sit beside data but are not rows: run reports, and `save_to_disk` metadata.
SIDE_FILES = (".report.json",)
METADATA_FILES = ("dataset_info.json", "state.json", "dataset_dict.json")
_BATCH = 64


class RowsError(SrlSweError, ValueError):
    """A container could not be read; names the container and what was expected."""


@dataclass(frozen=True)
class Row:
    """One row of a container: where it is (file, split, 0-based index) and its value."""

    source: str  # the container (``folder[split]`` for a split of a save_to_disk folder)
    index: int
    data: Any
    single: bool = False  # the container holds this one row only

    @property
    def location(self) -> str:
        return self.source if self.single else f"{self.source}:{self.index + 1}"


def is_dataset_folder(path: Path) -> bool:
    """A `save_to_disk` folder (a Dataset: ``state.json``; a DatasetDict: ``dataset_dict.json``)."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def is_container_name(name: str) -> bool:
    return name.endswith(SUFFIXES) and not name.endswith(SIDE_FILES) and name not in METADATA_FILES


def find_containers(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Containers among `paths`: files as given, folders searched recursively in name order; a
    `save_to_disk` folder is one container (its Arrow and metadata files are not rows)."""
    for p in map(Path, paths):
        if is_dataset_folder(p):
            yield p
        elif p.is_dir():
            for child in sorted(p.iterdir()):
                if child.is_dir():
                    yield from find_containers([child])
                elif child.is_file() and is_container_name(child.name):
                    yield child
        else:
            yield p


def _is_one_document(items: list) -> bool:
    """A JSON array that is one trajectory (a message list or an event stream), not a list of rows."""
    first = items[0] if items else None
    return isinstance(first, dict) and (
        "role" in first or ("source" in first and ("action" in first or "observation" in first))
    )


def _splits(folder: Path) -> list[tuple[str, Path]]:
    """(name, folder) of each split: ``[("", folder)]`` for a plain Dataset folder."""
    dd = folder / "dataset_dict.json"
    if dd.is_file():
        try:
            names = json.loads(dd.read_text())["splits"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RowsError(
                f'{dd}: expected {{"splits": [...]}} as `save_to_disk` writes it ({exc})'
            ) from None
        return [(str(n), folder / str(n)) for n in names]
    return [("", folder)]


def _arrow_files(split: Path) -> list[Path]:
    state = split / "state.json"
    try:
        files = [split / f["filename"] for f in json.loads(state.read_text())["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RowsError(
            f"{state}: expected the `_data_files` list that `save_to_disk` writes ({exc})"
        ) from None
    for f in files:
        if not f.is_file():
            raise RowsError(f"{split}: {f.name} is listed in state.json but missing")
    return files


def _pyarrow(path: Path):
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise RowsError(
            f"{path}: reading Parquet and Arrow data sets needs pyarrow (pip install 'srl-swe[train]')"
        ) from None
    return pyarrow


def _arrow_batches(path: Path):
    pa = _pyarrow(path)

    with pa.memory_map(str(path)) as source:
        try:
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)
            return
        yield from reader


def _batched_rows(batches, start: int, stop: int | None) -> Iterator[tuple[int, Any]]:
    """(index, row) for rows start..stop of a stream of record batches, converting only those."""
    base = 0
    for batch in batches:
        n = batch.num_rows
        lo, hi = max(start - base, 0), n if stop is None else min(stop - base, n)
        if lo < hi:
            for k in range(lo, hi, _BATCH):
                for j, row in enumerate(batch.slice(k, min(_BATCH, hi - k)).to_pylist()):
                    yield base + k + j, row
        base += n
        if stop is not None and base >= stop:
            return


def _parquet_batches(path: Path):
    pq = _pyarrow(path).parquet

    try:
        f = pq.ParquetFile(str(path))
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise RowsError(f"{path}: not a readable Parquet file ({exc})") from None
    yield from f.iter_batches(batch_size=256)


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def _json_document(path: Path) -> Any:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        return json.loads(raw)
    except OSError as exc:
        raise RowsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise RowsError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise RowsError(f"{path}: invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None


class JsonlLineError(RowsError):
    """One line of a JSONL container is not JSON; the other lines are still read."""

    def __init__(self, source: str, index: int, line_no: int, message: str):
        self.source, self.index, self.line_no = source, index, line_no
        super().__init__(f"{source}:{line_no}: invalid JSON: {message}")


def read_rows(path: str | Path, start: int = 0, stop: int | None = None) -> Iterator[Row | JsonlLineError]:
    """Rows ``start..stop`` of one container, in order. A JSONL line that is not JSON comes out as a
    `JsonlLineError` in its place (the batch goes on); anything else unreadable raises `RowsError`."""
    path = Path(path)
    if is_dataset_folder(path):
        base = 0
        for split, folder in _splits(path):
            source = f"{path}[{split}]" if split else str(path)
            n = 0
            for f in _arrow_files(folder):
                for i, row in _batched_rows(
                    _arrow_batches(f), start - base - n, None if stop is None else stop - base - n
                ):
                    yield Row(source, n + i, row)
                n += sum(b.num_rows for b in _arrow_batches(f))
            base += n
            if stop is not None and base >= stop:
                return
        return
    if not path.exists():
        raise RowsError(f"{path}: no such file or folder")
    if path.is_dir():
        raise RowsError(
            f"{path}: a folder that is not a `save_to_disk` data set (no state.json or dataset_dict.json)"
        )
    name = path.name
    if name.endswith(".parquet"):
        for i, row in _batched_rows(_parquet_batches(path), start, stop):
            yield Row(str(path), i, row)
    elif name.endswith((".jsonl", ".jsonl.gz")):
        index = 0
        with _open_text(path) as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                if stop is not None and index >= stop:
                    return
                if index >= start:
                    try:
                        yield Row(str(path), index, json.loads(line))
                    except json.JSONDecodeError as exc:
                        yield JsonlLineError(str(path), index, line_no, f"{exc.msg} (column {exc.colno})")
                index += 1
    else:
        data = _json_document(path)
        if isinstance(data, list) and data and not _is_one_document(data):
            for i in range(start, len(data) if stop is None else min(stop, len(data))):
                yield Row(str(path), i, data[i])
        elif start == 0 and (stop is None or stop > 0):
            yield Row(str(path), 0, data, single=True)


def count_rows(path: str | Path) -> int:
    """How many rows `read_rows` yields for the container (cheap for Parquet and Arrow: metadata only)."""
    path = Path(path)
    if is_dataset_folder(path):
        return sum(
            b.num_rows for _, folder in _splits(path) for f in _arrow_files(folder) for b in _arrow_batches(f)
        )
    name = path.name
    if name.endswith(".parquet"):
        pq = _pyarrow(path).parquet
        try:
            return pq.ParquetFile(str(path)).metadata.num_rows
        except Exception as exc:
            raise RowsError(f"{path}: not a readable Parquet file ({exc})") from None
    if name.endswith((".jsonl", ".jsonl.gz")):
        with _open_text(path) as fh:
            return sum(1 for line in fh if line.strip())
    data = _json_document(path)
    if isinstance(data, list) and data and not _is_one_document(data):
        return len(data)
    return 1


def iter_rows(path: str | Path, start: int = 0, stop: int | None = None) -> Iterator[tuple[str, Any]]:
    """(location, row) for each row of a container; a JSONL line that is not JSON raises `RowsError`."""
    for row in read_rows(path, start, stop):
        if isinstance(row, JsonlLineError):
            raise row
        yield row.location, row.data
