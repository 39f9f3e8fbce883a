"""Read recorded agent runs into `Trajectory` objects: format detection, files, directories.

Formats (auto-detected from the content, or forced with ``fmt=``):

=================  ================================================================================
``swe-agent``      SWE-agent ``.traj`` (old raw-command layout and function-calling layout)
``mini-swe-agent`` mini-swe-agent ``*.traj.json`` (+ ``*.report.json`` beside it for ``resolved``)
``openhands``      OpenHands event lists (JSON) and benchmark output records (JSONL)
``openai``         OpenAI chat messages with ``tool_calls`` (JSON, or JSONL: one trajectory a line)
``srl``            this project's own JSONL (what ``srl traj import`` writes), re-validated
=================  ================================================================================

Malformed input raises `TrajectoryImportError` naming the file (and line, for JSONL), the JSON path
and what was expected. `import_paths` never lets one bad file (or line) stop the others.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trajectories.importers import mini_swe_agent, openai_messages, openhands, swe_agent
from trajectories.importers.base import (
    Ctx,
    Imported,
    ImportError_,
    SkippedStep,
    TrajectoryImportError,
)
from trajectories.schema import Trajectory

__all__ = [
    "FORMATS",
    "FileReport",
    "ImportError_",
    "Imported",
    "SkippedStep",
    "TrajectoryImportError",
    "detect_format",
    "find_files",
    "import_file",
    "import_paths",
    "load_trajectories",
]

FORMATS = ("swe-agent", "mini-swe-agent", "openhands", "openai", "srl")
SUFFIXES = (".traj.json", ".traj", ".jsonl", ".json")
SIDE_FILES = (".report.json",)


def stem_of(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def detect_format(data: Any) -> str | None:
    """The format of one parsed JSON document (a whole file, or one JSONL line); None if unknown."""
    if isinstance(data, dict) and "steps" in data and "source_format" in data:
        return "srl"
    if mini_swe_agent.looks_like(data):
        return "mini-swe-agent"
    if swe_agent.looks_like(data):
        return "swe-agent"
    if openhands.looks_like_events(data) or openhands.looks_like_record(data):
        return "openhands"
    if openai_messages.looks_like(data):
        return "openai"
    return None


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


def _load_document(data: Any, fmt: str | None, ctx: Ctx, path: Path, raw: bytes | str) -> list[Imported]:
    found = fmt or detect_format(data)
    stem = stem_of(path)
    if found == "srl":
        return _load_srl(data, ctx)
    if found == "mini-swe-agent":
        report = path.with_name(f"{stem}.report.json")
        return mini_swe_agent.load(data, ctx, stem, raw if isinstance(raw, bytes) else raw.encode(), report)
    if found == "swe-agent":
        return swe_agent.load(data, ctx, stem, raw if isinstance(raw, bytes) else raw.encode())
    if found == "openhands":
        return openhands.load(data, ctx, stem, raw)
    if found == "openai":
        return openai_messages.load(data, ctx, stem, raw)
    if found is None:
        keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        raise ctx.error(
            "", f"unknown trajectory layout (top level: {keys}); expected one of {', '.join(FORMATS)}"
        )
    raise ctx.error("", f"unknown format {found!r}; expected one of {', '.join(FORMATS)}")


@dataclass
class FileReport:
    """What importing one file produced: trajectories (with their skipped steps) and errors."""

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


def _json_error(ctx: Ctx, exc: json.JSONDecodeError) -> TrajectoryImportError:
    return ctx.error("", f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")


def import_file(path: str | Path, fmt: str | None = None) -> FileReport:
    """Import every trajectory in one file; errors are collected in the report, never raised."""
    path = Path(path)
    report = FileReport(path=path)
    if fmt is not None and fmt not in FORMATS:
        report.errors.append(
            TrajectoryImportError(path, "", f"unknown format {fmt!r}; expected one of {FORMATS}")
        )
        return report
    try:
        raw = path.read_bytes()
    except OSError as exc:
        report.errors.append(TrajectoryImportError(path, "", f"cannot read: {exc.strerror or exc}"))
        return report
    if path.name.endswith(".jsonl"):
        lines = raw.decode("utf-8", errors="replace").splitlines()
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            ctx = Ctx(str(path), n)
            try:
                data = json.loads(line)
                report.format = report.format or fmt or detect_format(data)
                report.imported += _load_document(data, fmt, ctx, path, line)
            except json.JSONDecodeError as exc:
                report.errors.append(_json_error(ctx, exc))
            except TrajectoryImportError as exc:
                report.errors.append(exc)
        if not report.imported and not report.errors:
            report.errors.append(
                TrajectoryImportError(path, "", "empty file: expected one JSON object per line")
            )
        return report
    ctx = Ctx(str(path))
    try:
        data = json.loads(raw)
        report.format = fmt or detect_format(data)
        report.imported += _load_document(data, fmt, ctx, path, raw)
    except json.JSONDecodeError as exc:
        report.errors.append(_json_error(ctx, exc))
    except UnicodeDecodeError as exc:
        report.errors.append(ctx.error("", f"not UTF-8 text ({exc.reason})"))
    except TrajectoryImportError as exc:
        report.errors.append(exc)
    return report


def find_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Trajectory files among `paths`, directories searched recursively (side files left out)."""
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.name.endswith(SUFFIXES) and not f.name.endswith(SIDE_FILES):
                    yield f
        else:
            yield p


def import_paths(paths: Iterable[str | Path], fmt: str | None = None) -> list[FileReport]:
    return [import_file(f, fmt) for f in find_files(paths)]


def load_trajectories(paths: Iterable[str | Path], fmt: str | None = None) -> list[Trajectory]:
    """Every trajectory in `paths`; raises the first import error (use `import_paths` to collect them)."""
    out: list[Trajectory] = []
    for report in import_paths(paths, fmt):
        if report.errors:
            raise report.errors[0]
        out += [i.trajectory for i in report.imported]
    return out
