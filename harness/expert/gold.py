"""What the gold patch tells the expert: its edits as editor calls, the failing tests, the names to
search for. Pure functions of plain data."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from unidiff import PatchSet

from trajectories.errors import SrlSweError

if TYPE_CHECKING:
    pass

Style = Literal["bash", "tools"]
STYLES: tuple[str, ...] = ("tools", "bash")
TOOLSET = {"tools": "editor", "bash": "bash_only"}
GENERATOR = "srl-expert"


class ExpertError(SrlSweError, RuntimeError):
    """The expert cannot make a run for this task (the message says which file / hunk / step and why)."""


# ---------------------------------------------------------------------------------------- gold edits


@dataclass(frozen=True)
class Edit:
    """One edit of the gold patch as an editor call would make it.

    ``replace``: `old` (unique in the file when the edit is made) becomes `new`; `line`..`end_line` is
    where `old` sits in the file at that moment, `orig_line`..`orig_end` the hunk's core in the base file.
    ``create``: a new file with text `new`. ``delete``: the file is removed.
    """

    path: str
    kind: Literal["replace", "create", "delete"]
    old: str = ""
    new: str = ""
    line: int = 1
    end_line: int = 1
    orig_line: int = 1
    orig_end: int = 1


def _strip_prefix(path: str) -> str:
    return path[2:] if path.startswith(("a/", "b/")) else path


def _hunk_blocks(hunk: Any) -> tuple[list[str], list[str]]:
    """The hunk's old and new lines (with their line ends), honouring "\\ No newline at end of file"."""
    old: list[str] = []
    new: list[str] = []
    last: str | None = None
    for line in hunk:
        kind = line.line_type
        if kind == "\\":
            targets = {" ": (old, new), "-": (old,), "+": (new,)}.get(last or "", ())
            for block in targets:
                if block and block[-1].endswith("\n"):
                    block[-1] = block[-1][:-1]
            continue
        if kind in (" ", "-"):
            old.append(line.value)
        if kind in (" ", "+"):
            new.append(line.value)
        last = kind
    return old, new


def _common_ends(a: list[str], b: list[str]) -> tuple[int, int]:
    """Lengths of the common prefix and (non-overlapping) common suffix of two line lists."""
    p = 0
    while p < len(a) and p < len(b) and a[p] == b[p]:
        p += 1
    s = 0
    while s < len(a) - p and s < len(b) - p and a[-1 - s] == b[-1 - s]:
        s += 1
    return p, s


def gold_edits(
    patch: str,
    originals: dict[str, str | None],
    *,
    context: Callable[[], tuple[int, int]] | None = None,
) -> list[Edit]:
    """The gold patch as editor edits, in order, against the base files in `originals` (path -> text).

    Each hunk is cut to the lines that change (an insertion keeps one neighbouring line as an anchor),
    widened by `context()` = (lines before, lines after) (default none), and then widened further until
    its old text occurs exactly once in the file as it is when the edit is made.
    """
    try:
        files = PatchSet(patch)
    except Exception as exc:  # unidiff raises its own parse errors
        raise ExpertError(f"gold patch: not a unified diff ({exc})") from exc
    edits: list[Edit] = []
    for pf in files:
        src, dst = _strip_prefix(pf.source_file), _strip_prefix(pf.target_file)
        if pf.is_binary_file:
            raise ExpertError(f"gold patch: {dst}: binary changes cannot be made with the editor")
        if pf.is_added_file or pf.source_file == "/dev/null":
            text = "".join("".join(_hunk_blocks(h)[1]) for h in pf)
            n = max(1, text.count("\n"))
            edits.append(Edit(dst, "create", new=text, line=1, end_line=n, orig_line=1, orig_end=n))
            continue
        if pf.is_removed_file or pf.target_file == "/dev/null":
            edits.append(Edit(src, "delete"))
            continue
        if src != dst:
            raise ExpertError(f"gold patch: {src} -> {dst}: renames are not supported by the expert")
        base = originals.get(src)
        if base is None:
            raise ExpertError(f"gold patch: {src}: the file is not in the repository at the base commit")
        edits += _file_edits(src, base, list(pf), context)
    return edits


def _file_edits(path: str, base: str, hunks: list[Any], context) -> list[Edit]:
    cur = base.splitlines(keepends=True)
    delta = 0
    out: list[Edit] = []
    for hunk in hunks:
        old_l, new_l = _hunk_blocks(hunk)
        start = (hunk.source_start if hunk.source_length == 0 else hunk.source_start - 1) + delta
        if cur[start : start + len(old_l)] != old_l:
            raise ExpertError(
                f"gold patch: {path}: the hunk at line {hunk.source_start} does not match the base file"
            )
        p, s = _common_ends(old_l, new_l)
        a, b = start + p, start + len(old_l) - s  # the changed lines in `cur`
        new_core = new_l[p : len(new_l) - s]
        before, after = context() if context else (0, 0)
        lo, hi = max(0, a - before), min(len(cur), b + after)
        content = "".join(cur)
        grow_before = True
        while True:
            old_text = "".join(cur[lo:hi])
            if old_text.strip() and content.count(old_text) == 1:
                break
            can_before, can_after = lo > 0, hi < len(cur)
            if not (can_before or can_after):
                raise ExpertError(
                    f"gold patch: {path}: no unique text around the hunk at line {hunk.source_start}"
                )
            if (grow_before and can_before) or not can_after:
                lo -= 1
            else:
                hi += 1
            grow_before = not grow_before
        new_text = "".join(cur[lo:a]) + "".join(new_core) + "".join(cur[b:hi])
        if old_text.endswith("\n") and new_text.endswith("\n") and content.count(old_text[:-1]) == 1:
            old_text, new_text = old_text[:-1], new_text[:-1]
        out.append(
            Edit(
                path,
                "replace",
                old=old_text,
                new=new_text,
                line=lo + 1,
                end_line=max(lo + 1, hi),
                orig_line=a - delta + 1,
                orig_end=max(a - delta + 1, b - delta),
            )
        )
        cur[lo:hi] = cur[lo:a] + new_core + cur[b:hi]
        delta += len(new_l) - len(old_l)
    return out


def apply_edits(originals: dict[str, str | None], edits: list[Edit]) -> dict[str, str | None]:
    """The files after `edits` (pure; what the editor will do), for checking a plan before running it."""
    files = dict(originals)
    for e in edits:
        if e.kind == "create":
            files[e.path] = e.new
        elif e.kind == "delete":
            files[e.path] = None
        else:
            text = files.get(e.path) or ""
            if text.count(e.old) != 1:
                raise ExpertError(f"{e.path}: old text occurs {text.count(e.old)} times, expected once")
            files[e.path] = text.replace(e.old, e.new, 1)
    return files


def patched_files(patch: str, originals: dict[str, str | None]) -> dict[str, str | None]:
    """The files the gold patch leaves (pure, straight from the hunks), to check `gold_edits` against."""
    out = dict(originals)
    for pf in PatchSet(patch):
        src, dst = _strip_prefix(pf.source_file), _strip_prefix(pf.target_file)
        if pf.is_removed_file or pf.target_file == "/dev/null":
            out[src] = None
            continue
        lines = (
            []
            if pf.is_added_file or pf.source_file == "/dev/null"
            else (originals[src] or "").splitlines(True)
        )
        delta = 0
        for h in pf:
            old_l, new_l = _hunk_blocks(h)
            start = (h.source_start if h.source_length == 0 else h.source_start - 1) + delta
            lines[start : start + len(old_l)] = new_l
            delta += len(new_l) - len(old_l)
        out[dst] = "".join(lines)
    return out


# ---------------------------------------------------------------------------------------- names


_IDENT_RE = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]{2,})\b")
_DEF_RE = re.compile(r"^\s*(?:async\s+def|def|class)\s+([A-Za-z_][A-Za-z0-9_]*)")
_KEYWORDS = frozenset(
    "self cls def class return import from None True False and not for while with yield lambda pass "
    "raise try except finally elif else assert async await print super isinstance len str int dict "
    "list tuple set object kwargs args".split()
)


@dataclass(frozen=True)
class FailingTest:
    node: str  # as listed in FAIL_TO_PASS
    file: str | None
    cls: str | None
    func: str


def failing_tests(names: list[str]) -> list[FailingTest]:
    """FAIL_TO_PASS entries split into file / class / function (``path::Class::test_x[param]``)."""
    out = []
    for name in names:
        parts = name.split("::")
        file = parts[0] if len(parts) > 1 and parts[0].endswith(".py") else None
        rest = parts[1:] if file else parts
        func = re.sub(r"\[.*\]$", "", rest[-1]) if rest else name
        cls = rest[-2] if len(rest) >= 2 else None
        out.append(FailingTest(name, file, cls, func.split()[0] if func.split() else func))
    return out


def gold_identifiers(patch: str, originals: dict[str, str | None]) -> list[str]:
    """Names a reader would search for: functions / classes the hunks sit in or change, then other
    identifiers of the changed lines that occur in the base file; most telling first."""
    names: list[str] = []

    def add(name: str) -> None:
        if name not in names and name not in _KEYWORDS and not name.startswith("test"):
            names.append(name)

    for pf in PatchSet(patch):
        path = _strip_prefix(pf.target_file if pf.target_file != "/dev/null" else pf.source_file)
        base = originals.get(path) or ""
        for h in pf:  # definitions inside the hunk first, then the one git names in the hunk header
            for line in h:
                m = _DEF_RE.match(line.value)
                if m and line.line_type in "-+ ":
                    add(m.group(1))
            m = _DEF_RE.match(h.section_header or "")
            if m:
                add(m.group(1))
        found: dict[str, int] = {}
        for h in pf:
            for line in h:
                if line.line_type in "-+":
                    for ident in _IDENT_RE.findall(line.value):
                        if ident not in found and base:
                            found[ident] = len(re.findall(rf"\b{re.escape(ident)}\b", base))
        # then the changed lines' other names that the file already has: rare and long ones first
        for ident in sorted((i for i, n in found.items() if n), key=lambda i: (found[i] > 5, -len(i))):
            add(ident)
    return names


def _first_line(text: str) -> str:
    for line in text.split("\n"):
        if line.strip():
            return line.strip()
    return ""
