"""What every importer shares: the error type, a JSON walker that knows where it is, the result type.

Errors name the file, the JSON path (``trajectory[3].action``) and what was expected, e.g.::

    pydicom.traj: trajectory[3].action: expected a string, got int
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trajectories.errors import SrlSweError
from trajectories.schema import Trajectory


class TrajectoryImportError(SrlSweError, ValueError):
    """A file could not be imported; says which file, where in it, and what was expected."""

    def __init__(self, file: str | Path, json_path: str, message: str, line: int | None = None):
        self.file = str(file)
        self.json_path = json_path
        self.line = line
        self.message = message
        where = self.file + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: {json_path or '<root>'}: {message}")

    def __reduce__(self):  # picklable across worker processes
        return (self.__class__, (self.file, self.json_path, self.message, self.line))


ImportError_ = TrajectoryImportError  # the name the design notes use

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "a list",
    dict: "an object",
}


def _type_name(t: type | tuple[type, ...]) -> str:
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t)
    return _TYPE_NAMES.get(t, t.__name__)


def _json_type(value: Any) -> str:
    return {str: "string", int: "int", float: "float", bool: "bool", list: "list", dict: "object"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


class Node:
    """A JSON value plus where it sits in its file, so every error can say exactly where."""

    __slots__ = ("value", "path", "ctx")

    def __init__(self, value: Any, path: str, ctx: Ctx):
        self.value = value
        self.path = path
        self.ctx = ctx

    def _child_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def fail(self, message: str, key: str | int | None = None) -> TrajectoryImportError:
        return self.ctx.error(self.path if key is None else self._child_path(key), message)

    def expect(self, t: type | tuple[type, ...]) -> Node:
        ok = isinstance(self.value, t) and not (isinstance(self.value, bool) and bool not in _as_tuple(t))
        if not ok:
            raise self.fail(f"expected {_type_name(t)}, got {_json_type(self.value)}")
        return self

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and key in self.value

    def req(self, key: str, t: type | tuple[type, ...] | None = None) -> Node:
        self.expect(dict)
        if key not in self.value:
            raise self.fail(f"missing required field {key!r}", key)
        child = Node(self.value[key], self._child_path(key), self.ctx)
        return child.expect(t) if t is not None else child

    def opt(self, key: str, t: type | tuple[type, ...] | None = None) -> Node | None:
        """The child, or None when the key is absent or null."""
        self.expect(dict)
        if self.value.get(key) is None:
            return None
        child = Node(self.value[key], self._child_path(key), self.ctx)
        return child.expect(t) if t is not None else child

    def items(self) -> list[Node]:
        self.expect(list)
        return [Node(v, self._child_path(i), self.ctx) for i, v in enumerate(self.value)]

    def text(self, key: str, default: str = "") -> str:
        """An optional string field (null or absent -> `default`)."""
        child = self.opt(key, str)
        return default if child is None else child.value


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


@dataclass(frozen=True)
class Ctx:
    """Which file (and line, for JSONL) a walker belongs to."""

    file: str
    line: int | None = None

    def error(self, json_path: str, message: str) -> TrajectoryImportError:
        return TrajectoryImportError(self.file, json_path, message, self.line)

    def root(self, value: Any) -> Node:
        return Node(value, "", self)


@dataclass(frozen=True)
class SkippedStep:
    """A recorded agent turn that is not an action (format error, chat message, unsupported tool)."""

    index: int  # position of the turn in its source list (message / event index)
    reason: str  # short category, used for counting
    detail: str = ""


@dataclass
class Imported:
    """One trajectory read from a file, with what was left out of it and why."""

    trajectory: Trajectory
    skipped: list[SkippedStep] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)  # kept-but-remarkable things, ignored events


def trajectory_id(instance_id: str, source_format: str, raw: bytes | str, line: int | None = None) -> str:
    """A stable id for one recorded run: the instance id plus a short hash of the recording.

    `raw` is the row's key (`row_key`: its content and position, whatever container it came in), so
    the same rows get the same ids from JSONL, Parquet or a `save_to_disk` folder; `line` is unused
    (kept for callers that pass it)."""
    h = hashlib.sha1(raw.encode() if isinstance(raw, str) else raw)
    return f"{instance_id}.{source_format}.{h.hexdigest()[:10]}"


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def row_key(data: Any) -> str:
    """A container-independent key of one row: its JSON with null fields dropped (Parquet and Arrow
    fill absent struct fields with nulls), whatever container, split or position it came in."""
    return json.dumps(_drop_nulls(data), sort_keys=True, ensure_ascii=False, default=str)


_ISSUE_PATTERNS = (
    re.compile(
        r"<pr_description>\s*(?:Consider the following PR description:\s*)?(.*?)\s*</pr_description>", re.S
    ),
    re.compile(r"<issue_description>\s*(.*?)\s*</issue_description>", re.S),
    re.compile(r"\bISSUE:\n(.*?)\n+INSTRUCTIONS:", re.S),
    re.compile(r"-+ (?:START OF )?NEW TASK DESCRIPTION -+\n(.*?)\n-+ END OF NEW TASK DESCRIPTION", re.S),
)


def extract_issue(text: str) -> str:
    """The issue text inside an agent's task message (the whole message when no known marker is found)."""
    for pat in _ISSUE_PATTERNS:
        m = pat.search(text)
        if m:
            return m.group(1).strip()
    return text.strip()


def content_text(node: Node | None) -> str:
    """Chat message content as text: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if node is None:
        return ""
    if isinstance(node.value, str):
        return node.value
    parts = []
    for part in node.expect(list).items():
        if isinstance(part.value, str):
            parts.append(part.value)
        else:
            parts.append(part.text("text"))
    return "".join(parts)
