"""Read trajectory containers row by row: format detection, per-row dispatch to the importers, reports.

A bad row is an error for that row only: `iter_file` yields one `RowResult` per row, so a batch goes on
and every failed row is named. An unrecognised row says which format it resembles and what it is missing.
(`trajectories.importers` re-exports everything here; its docstring lists the formats.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trajectories.importers import mini_swe_agent, nebius, openai_messages, openhands, swe_agent, text_calls
from trajectories.importers.base import (
    Ctx,
    Imported,
    SkippedStep,
    TrajectoryImportError,
    row_key,
)
from trajectories.rows import SUFFIXES, JsonlLineError, Row, RowsError, find_containers, read_rows
from trajectories.schema import Trajectory

FORMATS = (
    "swe-agent",
    "mini-swe-agent",
    "openhands",
    "openai",
    "swe-smith",
    "openhands-text",
    "nebius",
    "srl",
)


def stem_of(path: Path) -> str:
    name = path.name
    for suffix in (*SUFFIXES, ".gz"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def detect_format(data: Any) -> str | None:
    """The format of one row (a whole file, one JSONL line, one Parquet row); None if unknown."""
    if isinstance(data, dict) and "steps" in data and "source_format" in data:
        return "srl"
    if mini_swe_agent.looks_like(data):
        return "mini-swe-agent"
    if swe_agent.looks_like(data):
        return "swe-agent"
    if nebius.looks_like(data):
        return "nebius"
    if openhands.looks_like_events(data) or openhands.looks_like_record(data):
        return "openhands"
    if openai_messages.looks_like(data):
        return "openai"
    return text_calls.classify(data)


def _resemblance(data: Any) -> str:
    """Which format an unrecognised row looks closest to, and what it lacks."""
    if isinstance(data, dict):
        keys = sorted(data)[:10]
        if isinstance(data.get("messages"), list):
            which = "SWE-smith rows" if "traj_id" in data or "patch" in data else "chat-message rows"
            return (
                f"looks like {which} (keys {keys}): {text_calls.missing(data)}; expected actions as "
                "<function=NAME>...</function> in the assistant text, fenced command blocks, or tool_calls"
            )
        if isinstance(data.get("trajectory"), list):
            return (
                f"looks like a SWE-agent run (keys {keys}) but has neither `history`/`info` (a .traj) nor "
                "turns with `role` and `text` (nebius rows)"
            )
        if isinstance(data.get("history"), list):
            return f"looks like an OpenHands output record (keys {keys}) but has no `instruction`"
        if "problem_statement" in data and ("base_commit" in data or "patch" in data):
            return f"looks like a task row (SWE-bench family, keys {keys}), not a trajectory: use `srl task list`"
        return f"unknown trajectory layout (keys {keys}); expected one of {', '.join(FORMATS)}"
    if isinstance(data, list):
        if data and isinstance(data[0], dict) and "role" in data[0]:
            return (
                "looks like a bare chat-message list, but no assistant message holds a tool call, a "
                "<function=...> call or a ```mswea_bash_command block"
            )
        return f"unknown trajectory layout (a list of {type(data[0]).__name__ if data else 'nothing'})"
    return f"unknown trajectory layout (top level: {type(data).__name__}); expected a JSON object or list"


def _load_srl(data: Any, ctx: Ctx) -> list[Imported]:
    try:
        traj = Trajectory.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        raise ctx.error(path, f"{err['msg']} (got {str(err.get('input'))[:60]!r})") from None
    if not traj.steps and traj.exit_status is None:
        # a recorded expert run must have steps; an agent episode that ended before its first valid
        # action (exit_status e.g. "format_errors") is a true record with none, and yields no data
        raise ctx.error("steps", "empty trajectory: expected at least one step")
    return [Imported(traj)]


def _load_row(
    data: Any, fmt: str | None, ctx: Ctx, path: Path, key: str
) -> tuple[str | None, list[Imported]]:
    found = fmt or detect_format(data)
    stem = stem_of(path)
    if found == "srl":
        return found, _load_srl(data, ctx)
    if found == "mini-swe-agent":
        report = path.with_name(f"{stem}.report.json")
        return found, mini_swe_agent.load(data, ctx, stem, key.encode(), report)
    if found == "swe-agent":
        return found, swe_agent.load(data, ctx, stem, key.encode())
    if found == "nebius":
        return found, nebius.load(data, ctx, stem, key)
    if found == "openhands":
        return found, openhands.load(data, ctx, stem, key)
    if found == "openai":
        return found, openai_messages.load(data, ctx, stem, key)
    if found in (text_calls.SWE_SMITH, text_calls.OPENHANDS_TEXT):
        return found, text_calls.load(data, ctx, stem, key, found)
    if found is None:
        raise ctx.error("", _resemblance(data))
    raise ctx.error("", f"unknown format {found!r}; expected one of {', '.join(FORMATS)}")


@dataclass
class RowResult:
    """What one row of a container gave: its trajectories, or the error that skipped it."""

    location: str
    format: str | None = None
    imported: list[Imported] = field(default_factory=list)
    error: TrajectoryImportError | None = None


def _row_result(row: Row | JsonlLineError, fmt: str | None, path: Path) -> RowResult:
    if isinstance(row, JsonlLineError):
        err = TrajectoryImportError(row.source, "", str(row).split(": ", 1)[1], row.line_no)
        return RowResult(f"{row.source}:{row.line_no}", error=err)
    ctx = Ctx(row.source, None if row.single else row.index + 1)
    result = RowResult(row.location)
    try:
        result.format, result.imported = _load_row(row.data, fmt, ctx, path, row_key(row.data))
    except TrajectoryImportError as exc:
        result.format = fmt or detect_format(row.data)
        result.error = exc
    except (ValidationError, ValueError) as exc:  # a value no schema allows (e.g. a tool name): this row only
        result.format = fmt or detect_format(row.data)
        first = str(exc).strip().splitlines()
        result.error = ctx.error("", f"invalid value: {' '.join(first[:3])[:300]}")
    return result


def iter_file(
    path: str | Path, fmt: str | None = None, start: int = 0, stop: int | None = None
) -> Iterator[RowResult]:
    """One `RowResult` per row of a container (rows ``start..stop``); never raises for bad input:
    an unreadable container is one result with its error."""
    path = Path(path)
    if fmt is not None and fmt not in FORMATS:
        yield RowResult(
            str(path),
            error=TrajectoryImportError(
                path, "", f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}"
            ),
        )
        return
    any_row = False
    try:
        for row in read_rows(path, start, stop):
            any_row = True
            yield _row_result(row, fmt, path)
    except RowsError as exc:
        msg = str(exc)
        prefix = f"{path}: "
        yield RowResult(
            str(path),
            error=TrajectoryImportError(path, "", msg[len(prefix) :] if msg.startswith(prefix) else msg),
        )
        return
    if not any_row and start == 0:
        yield RowResult(
            str(path), error=TrajectoryImportError(path, "", "empty file: expected at least one row")
        )


@dataclass
class FileReport:
    """What importing one container produced: trajectories (with their skipped steps) and errors."""

    path: Path
    format: str | None = None
    imported: list[Imported] = field(default_factory=list)
    errors: list[TrajectoryImportError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def n_steps(self) -> int:
        return sum(len(i.trajectory.steps) for i in self.imported)

    @property
    def skipped(self) -> list[SkippedStep]:
        return [s for i in self.imported for s in i.skipped]


def import_file(path: str | Path, fmt: str | None = None) -> FileReport:
    """Import every trajectory in one container; errors are collected in the report, never raised."""
    report = FileReport(path=Path(path))
    for r in iter_file(path, fmt):
        report.format = report.format or r.format
        report.imported += r.imported
        if r.error is not None:
            report.errors.append(r.error)
    return report


def find_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Trajectory containers among `paths`, directories searched recursively (side files left out)."""
    return find_containers(paths)


def import_paths(paths: Iterable[str | Path], fmt: str | None = None) -> list[FileReport]:
    return [import_file(f, fmt) for f in find_files(paths)]


def iter_trajectories(paths: Iterable[str | Path], fmt: str | None = None) -> Iterator[Trajectory]:
    """Every trajectory under `paths`, one at a time; raises the first import error."""
    for f in find_files(paths):
        for r in iter_file(f, fmt):
            if r.error is not None:
                raise r.error
            for imp in r.imported:
                yield imp.trajectory


def load_trajectories(paths: Iterable[str | Path], fmt: str | None = None) -> list[Trajectory]:
    """Every trajectory in `paths` (any format, any container); raises the first import error (use
    `import_paths` or `iter_file` to collect them)."""
    return list(iter_trajectories(paths, fmt))
