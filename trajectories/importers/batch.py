"""Import many containers into a folder of srl-swe JSONL (one file per input container): `import_files`.

This is `srl traj import` as a library call. Rows that fail are skipped and collected with their
reason, so a batch goes on and every failed row is named in the `ImportReport`; nothing is raised for
bad input rows. What a caller wants to show while it runs (a progress bar) comes through an
`ImportProgress`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from trajectories.errors import SrlSweError
from trajectories.importers.base import Imported, TrajectoryImportError
from trajectories.importers.reader import FORMATS, find_files, iter_file, stem_of
from trajectories.rows import SUFFIXES, RowsError, count_rows


class NoTrajectoryFiles(SrlSweError, FileNotFoundError):
    """None of the given paths holds a trajectory container."""


class ImportProgress:
    """Hooks `import_files` calls while it runs; the default does nothing (subclass what you need)."""

    def file_started(self, path: Path, rows: int | None) -> None:
        """`path` is about to be read; `rows` is its row count when cheap to know (else None)."""

    def row_done(self) -> None:
        """One more row of the current file was read (imported or failed)."""

    def file_done(self, path: Path) -> None:
        """`path` is finished (also when reading it stopped on an error)."""


@dataclass
class FileImport:
    """What one input container gave: where it was written, counts, and the rows that failed."""

    path: Path
    dest: Path | None = None  # None when no trajectory of it was written
    formats: Counter[str] = field(default_factory=Counter)
    trajectories: int = 0
    steps: int = 0
    tools: Counter[str] = field(default_factory=Counter)  # "recorded" (by the source) / "default"
    skipped: Counter[str] = field(default_factory=Counter)  # skipped steps by reason
    notes: Counter[str] = field(default_factory=Counter)
    errors: list[TrajectoryImportError] = field(default_factory=list)

    def add(self, imp: Imported) -> None:
        """Count one imported trajectory."""
        self.trajectories += 1
        self.steps += len(imp.trajectory.steps)
        self.tools["recorded" if imp.trajectory.tools else "default"] += 1
        self.skipped.update(s.reason for s in imp.skipped)
        for key, v in imp.notes.items():
            self.notes["non-agent events ignored" if key.startswith("ignored") else key] += v


@dataclass
class ImportReport:
    """What `import_files` wrote to `out`, file by file, and every row that failed."""

    out: Path
    files: list[FileImport] = field(default_factory=list)

    @property
    def trajectories(self) -> int:
        return sum(f.trajectories for f in self.files)

    @property
    def steps(self) -> int:
        return sum(f.steps for f in self.files)

    @property
    def skipped_steps(self) -> int:
        return sum(sum(f.skipped.values()) for f in self.files)

    @property
    def errors(self) -> list[TrajectoryImportError]:
        return [e for f in self.files for e in f.errors]

    @property
    def failed_rows(self) -> int:
        return len(self.errors)

    @property
    def failed_files(self) -> int:
        return sum(bool(f.errors) for f in self.files)

    @property
    def ok(self) -> bool:
        return not self.failed_files

    def summary(self) -> str:
        """One line: what was written where, and how much failed."""
        return (
            f"{self.trajectories} trajectories, {self.steps} steps, {self.skipped_steps} skipped steps written "
            f"to {self.out}; {self.failed_rows} row(s) in {self.failed_files} file(s) failed"
        )


def import_files(
    paths: Iterable[str | Path],
    out: str | Path,
    fmt: str | None = None,
    progress: ImportProgress | None = None,
) -> ImportReport:
    """Import every trajectory container under `paths` (folders searched recursively) into `out`.

    Each container that yields at least one trajectory becomes ``out/<stem>.jsonl`` (``<stem>-2.jsonl``
    and so on when two inputs share a stem), one `Trajectory` a line. `fmt` forces the input format
    (default: detected per row). Raises ValueError for an unknown `fmt` and `NoTrajectoryFiles` when
    `paths` hold no container (`out` is not created then); failed rows are in the report, not raised.
    """
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    paths = list(paths)
    files = list(find_files(paths))
    if not files:
        raise NoTrajectoryFiles(
            f"no trajectory files ({', '.join('*' + s for s in SUFFIXES)}, or save_to_disk folders) in "
            f"{', '.join(map(str, paths))}"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    progress = progress or ImportProgress()
    report = ImportReport(out)
    used: set[str] = set()
    for f in files:
        progress.file_started(f, _row_count(f))
        try:
            report.files.append(_import_one(f, fmt, out, used, progress))
        finally:
            progress.file_done(f)
    return report


def _import_one(f: Path, fmt: str | None, out: Path, used: set[str], progress: ImportProgress) -> FileImport:
    """Import one container, writing its trajectories to a fresh JSONL in `out` (opened on the first)."""
    result = FileImport(f)
    fh: IO[str] | None = None
    try:
        for r in iter_file(f, fmt):
            progress.row_done()
            if r.format:
                result.formats[r.format] += 1
            if r.error is not None:
                result.errors.append(r.error)
                continue
            for imp in r.imported:
                if fh is None:
                    result.dest = _out_name(out, stem_of(f), used)
                    fh = result.dest.open("w")
                fh.write(imp.trajectory.model_dump_json() + "\n")
                result.add(imp)
    finally:
        if fh is not None:
            fh.close()
    return result


def _row_count(f: Path) -> int | None:
    """Rows in a container when its format can count them cheaply (one for a whole-file JSON)."""
    try:
        return count_rows(f) if f.name.endswith((".parquet", ".jsonl", ".jsonl.gz")) or f.is_dir() else 1
    except RowsError:
        return None


def _out_name(out: Path, stem: str, used: set[str]) -> Path:
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}-{n}"
    used.add(name)
    return out / f"{name}.jsonl"
