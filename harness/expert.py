"""A scripted expert that solves a task from its gold patch, in a sandbox, and records what it saw.

    run = generate_run(spec, style="tools", seed=3)
    run.trajectory          # our `Trajectory`: thoughts, tool calls, the real observations
    run.resolved            # the grader's verdict on the submitted patch

The expert is an oracle (it knows the gold patch) that acts like an engineer: it looks around the
repository (a listing, `grep` for names taken from the failing tests and from the gold hunks), reads the
failing test and the code around every hunk, edits (``str_replace_editor`` with the gold hunks as
``old_str -> new_str``, new files with ``create``; or, with ``style="bash"``, Python heredoc edits
through ``bash``), runs the failing tests and submits. A seed varies the exploration (order, commands,
view windows, how much context an edit carries) and adds an occasional wrong turn with its correction (a
look at the wrong file, a test run before the fix that fails, an edit whose ``old_str`` does not match),
so step-wise data made from many runs is not one template. Every thought says what the previous
observation showed (read from the real output) and why the next action follows.

Planning (`plan_run`, `gold_edits`) and writing thoughts (`write_thought`) are pure functions of plain
data; `generate_run` gathers the facts in the sandbox, executes the plan, grades the submitted patch
with the evaluation harness and (optionally) replays the trajectory to check that it reproduces the diff.
"""

from __future__ import annotations

import random
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from unidiff import PatchSet

from trajectories.schema import Step, ToolCall, Trajectory

if TYPE_CHECKING:
    import docker

    from envs.spec import TaskSpec

TESTBED = "/testbed"
Style = Literal["bash", "tools"]
STYLES: tuple[str, ...] = ("tools", "bash")
TOOLSET = {"tools": "editor", "bash": "bash_only"}
GENERATOR = "srl-expert"


class ExpertError(RuntimeError):
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


# ---------------------------------------------------------------------------------------- the plan


@dataclass
class RepoFacts:
    """What the expert learns about the repo before it starts (silently, not as recorded steps)."""

    files: list[str]  # git ls-files
    originals: dict[str, str | None]  # base text of the files the gold patch touches (None: absent)
    test_sources: dict[str, str] = field(default_factory=dict)  # base text of the failing tests' files
    collected: set[str] | None = None  # test node ids that exist at the base commit (None: unknown)


@dataclass
class PlanStep:
    kind: str
    call: ToolCall
    info: dict[str, Any] = field(default_factory=dict)


def _abs(path: str) -> str:
    return f"{TESTBED}/{path}"


def _py_literal(text: str) -> str:
    if "'''" not in text and "\\" not in text and "\r" not in text and not text.endswith("'"):
        return f"'''{text}'''"
    return repr(text)


def _heredoc_delim(text: str) -> str:
    lines = set(text.splitlines())
    for cand in ("EOF", "PYEOF", "END_OF_SCRIPT"):
        if cand not in lines:
            return cand
    return "EOF_" + str(abs(hash(text)) % 10**8)


def bash_replace_command(path: str, old: str, new: str, python: str = "python3") -> str:
    """A bash action that replaces the single occurrence of `old` in `path` (a Python heredoc)."""
    script = (
        f"path = {path!r}\n"
        'with open(path, newline="") as f:\n'
        "    text = f.read()\n"
        f"old = {_py_literal(old)}\n"
        f"new = {_py_literal(new)}\n"
        'assert text.count(old) == 1, f"expected one match of old in {path}, found {text.count(old)}"\n'
        'with open(path, "w", newline="") as f:\n'
        "    f.write(text.replace(old, new, 1))\n"
        'print(f"edited {path}: replaced {old.count(chr(10)) + 1} line(s) with {new.count(chr(10)) + 1}")\n'
    )
    delim = _heredoc_delim(script)
    return f"{python} - <<'{delim}'\n{script}{delim}"


def bash_create_command(path: str, text: str, python: str = "python3") -> str:
    parent = str(PurePosixPath(path).parent)
    mkdir = f"mkdir -p {shlex.quote(parent)} && " if parent not in ("", ".") else ""
    if text.endswith("\n") and "\r" not in text:
        delim = _heredoc_delim(text)
        return f"{mkdir}cat > {shlex.quote(path)} <<'{delim}'\n{text}{delim}"
    script = f'with open({path!r}, "w", newline="") as f:\n    f.write({_py_literal(text)})\n'
    delim = _heredoc_delim(script)
    return f"{mkdir}{python} - <<'{delim}'\n{script}{delim}"


def _view_call(style: str, path: str, first: int, last: int, rng: random.Random) -> ToolCall:
    if style == "tools":
        return ToolCall(
            name="str_replace_editor",
            arguments={"command": "view", "path": _abs(path), "view_range": f"[{first}, {last}]"},
        )
    q = shlex.quote(path)
    form = rng.choice(("nl", "cat", "sed"))
    if form == "nl":
        cmd = f"nl -ba {q} | sed -n '{first},{last}p'"
    elif form == "cat":
        cmd = f"cat -n {q} | sed -n '{first},{last}p'"
    else:
        cmd = f"sed -n '{first},{last}p' {q}"
    return ToolCall(name="bash", arguments={"command": cmd})


def _bash(cmd: str) -> ToolCall:
    return ToolCall(name="bash", arguments={"command": cmd})


def _n_lines(text: str | None) -> int:
    return len((text or "").split("\n"))


def _def_line(source: str, name: str) -> int | None:
    for i, line in enumerate(source.split("\n"), 1):
        if re.match(rf"\s*(?:async\s+)?def\s+{re.escape(name)}\b", line):
            return i
    return None


def _test_command(spec: TaskSpec, targets: list[str], rng: random.Random) -> str:
    if spec.test_cmd and "pytest" not in spec.test_cmd:
        return spec.test_cmd
    flags = rng.choice(("-q", "-q", "-x -q", "-q -p no:cacheprovider", "-rf -q"))
    return f"python -m pytest {flags} " + " ".join(shlex.quote(t) for t in targets)


def plan_run(spec: TaskSpec, facts: RepoFacts, style: str, seed: int) -> list[PlanStep]:
    """The expert's actions for one run (pure: the same inputs and seed give the same plan)."""
    if style not in STYLES:
        raise ExpertError(f"style {style!r}: expected one of {', '.join(STYLES)}")
    if not spec.patch.strip():
        raise ExpertError(f"{spec.instance_id}: the task has no gold patch")
    rng = random.Random(f"{spec.instance_id}|{style}|{seed}")
    edits = gold_edits(
        spec.patch, facts.originals, context=lambda: (rng.choice((0, 0, 1, 2, 3)), rng.choice((0, 0, 1, 2)))
    )
    want = patched_files(spec.patch, facts.originals)
    got = apply_edits(facts.originals, edits)
    if any(got.get(p) != want.get(p) for p in want):
        raise ExpertError(f"{spec.instance_id}: the planned edits do not reproduce the gold patch")
    tests = failing_tests(spec.FAIL_TO_PASS)
    idents = gold_identifiers(spec.patch, facts.originals)
    gold_paths = [e.path for e in edits]
    steps: list[PlanStep] = []

    # -- orientation
    if style == "tools" and rng.random() < 0.5:
        steps.append(
            PlanStep(
                "orient", ToolCall(name="str_replace_editor", arguments={"command": "view", "path": TESTBED})
            )
        )
    else:
        cmd = rng.choice(
            (
                "ls",
                "ls -la",
                "git ls-files | head -n 60",
                "find . -name '*.py' -not -path './.git/*' | sort | head -n 60",
            )
        )
        steps.append(PlanStep("orient", _bash(cmd)))

    # -- the failing test, and the code: in a seeded order
    explore: list[list[PlanStep]] = []
    known = [
        t for t in tests if t.file and _def_line(facts.test_sources.get(t.file, ""), t.func) is not None
    ]  # the failing tests that exist before the fix (a new test is not there to look at yet)
    if known:
        t = rng.choice(known)
        src = facts.test_sources[t.file]
        line = _def_line(src, t.func) or 1
        group = [
            PlanStep(
                "grep_test",
                _bash(
                    rng.choice(
                        (
                            f"grep -n {shlex.quote('def ' + t.func)} {shlex.quote(t.file)}",
                            f"grep -rn {shlex.quote(t.func)} {shlex.quote(str(PurePosixPath(t.file).parent))}",
                        )
                    )
                ),
                {"test": t.func, "file": t.file},
            )
        ]
        if rng.random() < 0.8:
            first = max(1, line - rng.choice((0, 1, 2)))
            last = min(_n_lines(src), line + rng.choice((12, 16, 20, 25)))
            group.append(
                PlanStep(
                    "view_test",
                    _view_call(style, t.file, first, last, rng),
                    {"test": t.func, "file": t.file, "first": first, "last": last},
                )
            )
        explore.append(group)
    code: list[PlanStep] = []
    n_idents = min(len(idents), rng.choice((1, 1, 2, 2, 3)))
    for ident in idents[:n_idents]:
        where = rng.choice(("--include='*.py' .", "."))
        cmd = rng.choice(
            (
                f"grep -rn {shlex.quote(ident)} --include='*.py' . | head -n 30",
                f"git grep -n {shlex.quote(ident)} | head -n 30",
                f"grep -rn {shlex.quote(ident)} {where} | grep -v '^./.git' | head -n 30",
            )
        )
        code.append(PlanStep("grep_ident", _bash(cmd), {"ident": ident}))
    explore.append(code)
    rng.shuffle(explore)
    for group in explore:
        steps += group

    # -- a wrong turn: a look at a neighbouring file first
    replace_edits = [e for e in edits if e.kind == "replace"]
    if replace_edits and rng.random() < 0.35:
        target = replace_edits[0].path
        parent = str(PurePosixPath(target).parent)
        siblings = [
            f
            for f in facts.files
            if f.endswith(".py")
            and str(PurePosixPath(f).parent) == parent
            and f not in gold_paths
            and not f.endswith("__init__.py")
            and "test" not in PurePosixPath(f).name
        ]
        if siblings:
            wrong = rng.choice(sorted(siblings))
            steps.append(
                PlanStep(
                    "view_wrong",
                    _view_call(style, wrong, 1, rng.choice((30, 40, 60)), rng),
                    {"file": wrong, "ident": idents[0] if idents else None, "right": target},
                )
            )

    # -- read the code around every hunk (base line numbers: nothing is edited yet)
    windows: list[list[Any]] = []  # [path, first, last, focus]; hunks close together share a window
    for e in replace_edits:
        n = _n_lines(facts.originals.get(e.path))
        first = max(1, e.orig_line - rng.choice((3, 5, 8, 10, 15)))
        last = min(n, e.orig_end + rng.choice((5, 8, 10, 15, 20)))
        near = next((w for w in windows if w[0] == e.path and first <= w[2] + 15 and w[1] <= last), None)
        if near is not None:
            near[1], near[2] = min(near[1], first), max(near[2], last)
        else:
            windows.append([e.path, first, last, _first_line(e.old)])
    max_views = rng.choice((3, 4, 5))  # with many hunks, read the first few places and edit the rest
    for path, first, last, focus in windows[:max_views]:
        steps.append(
            PlanStep(
                "view_code",
                _view_call(style, path, first, last, rng),
                {"file": path, "first": first, "last": last, "focus": focus},
            )
        )

    # -- optionally run the failing tests before the fix, when they exist at the base commit
    present = [t.node for t in tests if facts.collected is not None and t.node in facts.collected]
    files = sorted({t.file for t in tests if t.file and t.file in facts.test_sources})
    targets = present or files
    if present and rng.random() < 0.5:
        steps.append(PlanStep("test_before", _bash(_test_command(spec, targets, rng)), {"targets": targets}))

    # -- the edits, with an occasional one whose old text does not match, then its correction
    python = rng.choice(("python3", "python"))
    bad_done = False
    current = dict(facts.originals)
    dirs = {str(p) for f in facts.files for p in PurePosixPath(f).parents}
    for e in edits:
        if e.kind == "replace" and not bad_done and rng.random() < 0.25:
            wrong_old = _misindent(e.old)
            if wrong_old and (current.get(e.path) or "").count(wrong_old) == 0:
                bad_done = True
                steps.append(
                    PlanStep(
                        "edit_bad",
                        _edit_call(style, e, python, old=wrong_old),
                        {"file": e.path, "edit": e, "fails": True},
                    )
                )
                n = _n_lines(current.get(e.path))
                steps.append(
                    PlanStep(
                        "view_fix",
                        _view_call(style, e.path, max(1, e.line - 2), min(n, e.end_line + 2), rng),
                        {
                            "file": e.path,
                            "first": max(1, e.line - 2),
                            "last": min(n, e.end_line + 2),
                            "focus": _first_line(e.old),
                        },
                    )
                )
        parent = str(PurePosixPath(e.path).parent)
        if e.kind == "create" and style == "tools" and parent != "." and parent not in dirs:
            steps.append(PlanStep("mkdir", _bash(f"mkdir -p {shlex.quote(parent)}"), {"dir": parent}))
            dirs.add(parent)
        steps.append(PlanStep("edit", _edit_call(style, e, python), {"file": e.path, "edit": e}))
        current = apply_edits(current, [e])

    # -- check and submit
    if targets:
        steps.append(PlanStep("test_after", _bash(_test_command(spec, targets, rng)), {"targets": targets}))
    if rng.random() < 0.4:
        steps.append(
            PlanStep(
                "diff", _bash(rng.choice(("git diff", "git diff --stat", "git status --short && git diff")))
            )
        )
    steps.append(PlanStep("submit", ToolCall(name="submit", arguments={})))
    return steps


def _first_line(text: str) -> str:
    for line in text.split("\n"):
        if line.strip():
            return line.strip()
    return ""


def _misindent(old: str) -> str | None:
    """`old` with its indentation off by some spaces: the classic str_replace slip."""
    lines = old.split("\n")
    if not any(line.startswith(" ") for line in lines):
        return None
    return "\n".join(line[2:] if line.startswith("  ") else line for line in lines)


def _edit_call(style: str, e: Edit, python: str, old: str | None = None) -> ToolCall:
    old = e.old if old is None else old
    if style == "tools":
        if e.kind == "create":
            return ToolCall(
                name="str_replace_editor",
                arguments={"command": "create", "path": _abs(e.path), "file_text": e.new},
            )
        if e.kind == "delete":
            return _bash(f"git rm -q {shlex.quote(e.path)}")
        return ToolCall(
            name="str_replace_editor",
            arguments={"command": "str_replace", "path": _abs(e.path), "old_str": old, "new_str": e.new},
        )
    if e.kind == "create":
        return _bash(bash_create_command(e.path, e.new, python))
    if e.kind == "delete":
        return _bash(f"rm {shlex.quote(e.path)}")
    return _bash(bash_replace_command(e.path, old, e.new, python))


# ---------------------------------------------------------------------------------------- thoughts


def _short(text: str, n: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _first_sentence(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    return _short(m.group(1) if m else text, n)


_GREP_HIT_RE = re.compile(r"^(?:\./)?([^\s:]+\.[A-Za-z0-9]+):(\d+):(.*)$")
_PYTEST_COUNT_RE = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)")
_NUMBERED_RE = re.compile(r"^\s*(\d+)\t(.*)$")


def grep_hits(obs: str) -> list[tuple[str, int, str]]:
    """(file, line, text) of every ``path:line:text`` line of grep / git grep output."""
    hits = []
    for line in obs.splitlines():
        m = _GREP_HIT_RE.match(line)
        if m:
            hits.append((m.group(1), int(m.group(2)), m.group(3)))
    return hits


def pytest_summary(obs: str) -> dict[str, Any]:
    """Counts from pytest's last summary line, the failing test names and the first error line."""
    counts: dict[str, int] = {}
    for line in reversed(obs.splitlines()):
        found = _PYTEST_COUNT_RE.findall(line)
        if found and ("passed" in line or "failed" in line or "error" in line):
            counts = {k.rstrip("s") if k.startswith("error") else k: int(v) for v, k in found}
            break
    failed = [m.group(1) for m in re.finditer(r"^(?:FAILED|ERROR) (\S+)", obs, re.MULTILINE)]
    error = next((line[1:].strip() for line in obs.splitlines() if re.match(r"^E\s{2,}\S", line)), "")
    no_tests = "no tests ran" in obs or "ERROR: not found" in obs
    return {"counts": counts, "failed": failed, "error": error, "no_tests": no_tests}


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items()) or "no summary line"


def _numbered_lines(obs: str) -> list[tuple[int, str]]:
    out = []
    for line in obs.splitlines():
        m = _NUMBERED_RE.match(line)
        if m:
            out.append((int(m.group(1)), m.group(2)))
    return out


def describe(prev: PlanStep, obs: str, rng: random.Random) -> str:
    """What the previous observation showed, read from its text."""
    kind, info = prev.kind, prev.info
    text = obs.strip()
    if kind == "orient":
        entries = [e.removeprefix("./").removeprefix(TESTBED + "/") for e in re.split(r"\s+", text)]
        entries = [e for e in entries if e and not e.startswith((".", "total", "drwx", "-rw", TESTBED))]
        dirs = list(dict.fromkeys(e.split("/")[0] + "/" for e in entries if "/" in e))
        tops = (dirs + [e for e in entries if "/" not in e and e.endswith((".py", ".toml", ".cfg"))])[:6]
        return rng.choice(
            (
                f"The listing shows {', '.join(f'`{t}`' for t in tops) or 'the repository files'}.",
                f"The repository holds {', '.join(f'`{t}`' for t in tops) or 'a few files'} at the top level.",
            )
        )
    if kind in ("grep_ident", "grep_test"):
        hits = grep_hits(text) or [  # grep of one file prints line:text without the file name
            (info.get("file", "?"), int(m.group(1)), m.group(2))
            for m in re.finditer(r"^(\d+):(.*)$", text, re.M)
        ]
        what = info.get("ident") or info.get("test")
        if not hits:
            return f"Searching for `{what}` found nothing."
        files = list(dict.fromkeys(h[0] for h in hits))
        first = hits[0]
        defs = [h for h in hits if re.match(r"\s*(?:async\s+)?(?:def|class)\s", h[2])]
        lead = defs[0] if defs else first
        where = f"{lead[0]}:{lead[1]} (`{_short(lead[2].strip(), 60)}`)"
        if len(hits) == 1:
            return f"There is one match for `{what}`: {where}."
        return rng.choice(
            (
                f"`{what}` appears {len(hits)} times in {len(files)} file(s); the key one is {where}.",
                f"The search for `{what}` lists {len(hits)} lines, in {', '.join(files[:4])}; {where} stands out.",
            )
        )
    if kind in ("view_test", "view_code", "view_fix", "view_wrong"):
        lines = _numbered_lines(obs) or list(enumerate(obs.rstrip("\n").split("\n"), info.get("first", 1)))
        if not lines:
            return f"The view of {info.get('file')} came back empty."
        span = f"lines {lines[0][0]}-{lines[-1][0]} of {info.get('file')}"
        if kind == "view_wrong":
            ident = info.get("ident")
            if ident and not any(ident in t for _, t in lines):
                return (
                    f"{span[0].upper() + span[1:]} do not mention `{ident}`; this is not the file to change "
                    f"(it belongs in {info.get('right')})."
                )
            return f"{span[0].upper() + span[1:]} are related code, but the change belongs in {info.get('right')}."
        if kind == "view_test":
            asserts = [(n, t) for n, t in lines if "assert" in t or "raises" in t]
            if asserts:
                n, t = asserts[0]
                return f"The test `{info.get('test')}` ({span}) checks `{_short(t.strip(), 70)}` at line {n}."
            return f"The test `{info.get('test')}` is at {span}."
        focus = info.get("focus", "")
        at = next(((n, t) for n, t in lines if focus and t.strip() == focus), None)
        if at is None:
            at = next(((n, t) for n, t in lines if _DEF_RE.match(t)), lines[0])
        header = next((t.strip() for n, t in reversed(lines) if n <= at[0] and _DEF_RE.match(t)), "")
        inside = f" inside `{_short(header, 50)}`" if header and header != at[1].strip() else ""
        return rng.choice(
            (
                f"{span[0].upper() + span[1:]} show line {at[0]}: `{_short(at[1].strip(), 70)}`{inside}.",
                f"In {span}, line {at[0]} reads `{_short(at[1].strip(), 70)}`{inside}.",
            )
        )
    if kind in ("test_before", "test_after"):
        s = pytest_summary(text)
        if s["no_tests"] and not s["counts"]:
            return "The test run did not find the tests."
        msg = f"The test run ends with {_counts_text(s['counts'])}"
        if s["failed"]:
            msg += f"; failing: {', '.join(f'`{f.split(chr(58) * 2)[-1]}`' for f in s['failed'][:3])}"
        if s["error"]:
            msg += f" (`{_short(s['error'], 80)}`)"
        return msg + "."
    if kind == "edit_bad":
        if "did not appear verbatim" in text or "expected one match" in text or "AssertionError" in text:
            return "The replacement failed: my old text does not match the file verbatim (the indentation is off)."
        return "The first edit attempt did not go through."
    if kind == "edit":
        e: Edit = info["edit"]
        if e.kind == "create":
            return f"{e.path} now exists."
        if e.kind == "delete":
            return f"{e.path} is removed."
        if "has been edited" in text or text.startswith("edited"):
            new_first = _first_line(e.new)
            return rng.choice(
                (
                    f"The edit to {e.path} went in; the file now has `{_short(new_first, 60)}` around line {e.line}.",
                    f"{e.path} is edited (around line {e.line}).",
                )
            )
        return f"The edit to {e.path} reported: `{_short(text, 80)}`."
    if kind == "diff":
        files = re.findall(r"^diff --git a/(\S+)", text, re.MULTILINE) or re.findall(
            r"^\s*(\S+)\s+\|", text, re.MULTILINE
        )
        plus = len(re.findall(r"^\+(?!\+\+)", text, re.MULTILINE))
        minus = len(re.findall(r"^-(?!--)", text, re.MULTILINE))
        if plus or minus:
            return f"The diff changes {', '.join(files) or 'the code'} (+{plus}/-{minus} lines) and nothing else."
        return f"The diff touches {', '.join(files) or 'only the files I edited'}."
    return ""


def _change_summary(e: Edit) -> str:
    if e.kind == "create":
        return f"create {e.path}"
    if e.kind == "delete":
        return f"delete {e.path}"
    old = [ln for ln in e.old.split("\n")]
    new = [ln for ln in e.new.split("\n")]
    p, s = _common_ends(old, new)
    o, n = old[p : len(old) - s], new[p : len(new) - s]
    if len(o) == 1 and len(n) == 1:
        a, b = _changed_part(o[0].strip(), n[0].strip())
        return f"change `{a}` to `{b}`"
    if not o:
        return f"add {len(n)} line(s) starting with `{_short(_first_line(chr(10).join(n)), 60)}`"
    if not n:
        return f"remove {len(o)} line(s) starting with `{_short(_first_line(chr(10).join(o)), 60)}`"
    return (
        f"replace {len(o)} line(s) from `{_short(_first_line(chr(10).join(o)), 50)}` with {len(n)} line(s) "
        f"starting `{_short(_first_line(chr(10).join(n)), 50)}`"
    )


def _changed_part(a: str, b: str, room: int = 20) -> tuple[str, str]:
    """The part of two lines that differs, with up to `room` characters of context either side."""
    p = 0
    while p < min(len(a), len(b)) and a[p] == b[p]:
        p += 1
    s = 0
    while s < min(len(a), len(b)) - p and a[-1 - s] == b[-1 - s]:
        s += 1
    lo = max(0, p - room)
    ea, eb = len(a) - max(0, s - room), len(b) - max(0, s - room)
    pre, post_a, post_b = "…" if lo else "", "…" if ea < len(a) else "", "…" if eb < len(b) else ""
    return pre + a[lo:ea] + post_a, pre + b[lo:eb] + post_b


def motivate(step: PlanStep, spec: TaskSpec, rng: random.Random) -> str:
    """Why the next action follows."""
    kind, info = step.kind, step.info
    if kind == "orient":
        return rng.choice(
            ("Get an overview of the repository first.", "Start with the layout of the repository.")
        )
    if kind == "grep_test":
        return f"Find the failing test `{info['test']}` to see what it expects."
    if kind == "view_test":
        return f"Read `{info['test']}` in {info['file']}."
    if kind == "grep_ident":
        return rng.choice(
            (
                f"Search the code for `{info['ident']}` to find where it is defined and used.",
                f"Look for `{info['ident']}`, the name the fix is likely about.",
            )
        )
    if kind == "view_wrong":
        return f"Check {info['file']}, which might hold the logic."
    if kind in ("view_code", "view_fix"):
        if kind == "view_fix":
            return f"Look at the exact text of lines {info['first']}-{info['last']} of {info['file']} before retrying."
        return rng.choice(
            (
                f"Open {info['file']} at lines {info['first']}-{info['last']} to read the code that needs to change.",
                f"Read {info['file']} around line {info['first']}.",
            )
        )
    if kind == "test_before":
        return "Run the failing tests first to see the failure for myself."
    if kind == "mkdir":
        return f"The new file goes into {info['dir']}/, which does not exist yet: create the directory."
    if kind in ("edit", "edit_bad"):
        e: Edit = info["edit"]
        summary = _change_summary(e)
        if kind == "edit" and e.kind == "replace":
            return rng.choice((f"Fix it: {summary} in {e.path}.", f"In {e.path}, {summary}."))
        return f"Fix it: {summary}" + ("" if e.kind != "replace" else f" in {e.path}") + "."
    if kind == "test_after":
        return rng.choice(
            ("Run the failing tests again to check the fix.", "Now the tests should pass; run them.")
        )
    if kind == "diff":
        return "Review the whole diff before submitting."
    if kind == "submit":
        return rng.choice(("The fix is complete; submit.", "Everything is in place; submit the change."))
    return ""


def write_thought(
    prev: PlanStep | None, prev_obs: str | None, step: PlanStep, spec: TaskSpec, rng: random.Random
) -> str:
    """The thought before `step`: what the last observation showed, then why `step` comes next."""
    if prev is None:
        tests = [t.func for t in failing_tests(spec.FAIL_TO_PASS)][:3]
        issue = _first_sentence(spec.problem_statement) if spec.problem_statement.strip() else "a bug to fix"
        said = f"The task: {issue}"
        if tests:
            said += f" The failing test{'s are' if len(tests) > 1 else ' is'} {', '.join(f'`{t}`' for t in tests)}."
        return f"{said} {motivate(step, spec, rng)}"
    seen = describe(prev, prev_obs or "", rng)
    return f"{seen} {motivate(step, spec, rng)}".strip()


# ---------------------------------------------------------------------------------------- running


class ExpertRun:
    """One generated run: the trajectory and what the checks found."""

    def __init__(self, trajectory: Trajectory, resolved: bool | None, replay_equivalent: bool | None,
                 seconds: float, error: str | None = None) -> None:  # fmt: skip
        self.trajectory = trajectory
        self.resolved = resolved
        self.replay_equivalent = replay_equivalent
        self.seconds = seconds
        self.error = error

    @property
    def ok(self) -> bool:
        return self.error is None and self.resolved is not False and self.replay_equivalent is not False


def run_id(instance_id: str, style: str, seed: int) -> str:
    return f"{instance_id}.expert-{style}-s{seed}"


def gather_facts(sb: Any, spec: TaskSpec) -> RepoFacts:
    """Read what the plan needs from the sandbox's repo (not recorded as steps)."""
    res = sb.exec(f"cd {TESTBED} && git ls-files", timeout=60)
    files = res.output.split("\n") if res.exit_code == 0 else []
    files = [f for f in files if f]
    present = set(files)
    originals: dict[str, str | None] = {}
    for path in spec.gold_files:
        originals[path] = _read(sb, path) if path in present else None
    tests = failing_tests(spec.FAIL_TO_PASS)
    test_sources = {t.file: _read(sb, t.file) for t in tests if t.file and t.file in present}
    collected: set[str] | None = None
    if test_sources and "pytest" in spec.test_command():
        quoted = " ".join(shlex.quote(f) for f in sorted(test_sources))
        res = sb.exec(
            f"cd {TESTBED} && python -m pytest --collect-only -q -p no:cacheprovider {quoted} 2>/dev/null",
            timeout=float(spec.limits.test_timeout),
        )
        collected = {line.strip() for line in res.output.splitlines() if "::" in line}
    return RepoFacts(files=files, originals=originals, test_sources=test_sources, collected=collected)


def _read(sb: Any, path: str) -> str:
    return sb.read_file(f"{TESTBED}/{path}").decode("utf-8", errors="surrogateescape")


def _check_step(step: PlanStep, obs: Any) -> None:
    """A step that must work (an edit, submit) did: else the run is abandoned with the reason."""
    if step.kind == "edit":
        e: Edit = step.info["edit"]
        failed = (
            obs.exit_code != 0
            or "No replacement was performed" in obs.text
            or obs.text.startswith(("Error", "Traceback"))
        )
        if failed:
            raise ExpertError(f"edit of {e.path} failed: {_short(obs.text, 300)}")
    if step.kind == "edit_bad" and obs.exit_code == 0 and "has been edited" in obs.text:
        raise ExpertError(f"the deliberately wrong edit of {step.info['file']} applied")
    if step.kind == "submit" and not obs.submitted:
        raise ExpertError(f"submit failed: {_short(obs.text, 300)}")


def execute_plan(sb: Any, spec: TaskSpec, style: str, seed: int, step_timeout: float = 120.0) -> Trajectory:
    """Gather the facts, plan, run every step in the sandbox `sb`, and return the recorded trajectory."""
    from harness.tools import ToolRuntime

    facts = gather_facts(sb, spec)
    plan = plan_run(spec, facts, style, seed)
    runtime = ToolRuntime(sb, repo=TESTBED)
    runtime.install()
    rng = random.Random(f"{spec.instance_id}|{style}|{seed}|thoughts")
    traj = Trajectory(
        instance_id=spec.instance_id,
        source_format="srl",
        trajectory_id=run_id(spec.instance_id, style, seed),
        problem_statement=spec.problem_statement,
        metadata={"toolset": TOOLSET[style], "generator": GENERATOR, "style": style, "seed": seed},
    )
    prev: PlanStep | None = None
    prev_obs: str | None = None
    for step in plan:
        thought = write_thought(prev, prev_obs, step, spec, rng)
        timeout = float(spec.limits.test_timeout) if step.kind.startswith("test") else step_timeout
        obs = runtime.execute(step.call, timeout=timeout)
        if obs.unsupported or obs.timed_out:
            raise ExpertError(
                f"step {len(traj.steps)} ({step.kind}) {'timed out' if obs.timed_out else 'is unsupported'}"
            )
        _check_step(step, obs)
        traj.steps.append(Step(thought=thought, action=step.call, observation=obs.text,
                               execution_time=round(obs.duration, 4)))  # fmt: skip
        if obs.submitted:
            traj.final_patch = obs.patch or ""
            traj.exit_status = "submitted"
        prev, prev_obs = step, obs.text
    return traj


def generate_run(
    spec: TaskSpec,
    style: str = "tools",
    seed: int = 0,
    *,
    client: docker.DockerClient | None = None,
    grade: bool = True,
    replay: bool = True,
    step_timeout: float = 120.0,
) -> ExpertRun:
    """Make one expert run of `spec` in a fresh sandbox; grade its patch and replay it (each optional)."""
    from harness.docker_env import get_client
    from harness.images import ensure_instance_image
    from harness.sandbox import Sandbox, SandboxConfig

    started = time.perf_counter()
    client = client or get_client()
    image = ensure_instance_image(spec, client=client)
    cfg = SandboxConfig(
        image=image,
        workdir=TESTBED,
        timeout=step_timeout,
        cpus=spec.limits.cpus,
        memory=spec.limits.memory,
        pids_limit=spec.limits.pids,
        extra_labels={"kind": "expert", "instance_id": spec.instance_id},
    )
    with Sandbox(cfg, client=client) as sb:
        traj = execute_plan(sb, spec, style, seed, step_timeout)
    resolved: bool | None = None
    equivalent: bool | None = None
    if grade:
        from harness.evaluate import run_instance
        from harness.grading import grade as grade_run

        resolved = grade_run(
            spec, run_instance(spec, traj.final_patch or None, model=GENERATOR, client=client)
        ).resolved
        traj.resolved = resolved
    if replay and resolved is not False:
        from harness.replay import ReplayConfig, replay_task

        rep = replay_task(traj, spec, ReplayConfig(run_tests=False, step_timeout=step_timeout), client=client)
        equivalent = bool(rep.patch_equivalent)
        traj.metadata["replay"] = {"patch_equivalent": equivalent, "matching_steps": rep.n_matching,
                                   "steps": rep.n_steps}  # fmt: skip
    error = None
    if resolved is False:
        error = "the submitted patch does not resolve the task"
    elif equivalent is False:
        error = "the replayed trajectory does not reproduce the submitted diff"
    return ExpertRun(traj, resolved, equivalent, round(time.perf_counter() - started, 3), error)


# ---------------------------------------------------------------------------------------- many runs


@dataclass
class GenerateSummary:
    """What `generate_runs` did: files written now, files already there, runs that failed (and why)."""

    written: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def files(self) -> list[str]:
        return sorted(self.existing + self.written)


def plan_jobs(
    specs: list[TaskSpec], style: str, seed: int, runs_per_task: int
) -> list[tuple[TaskSpec, str, int]]:
    """(task, style, seed) of every run: seeds `seed`..`seed+K-1`; style ``mixed`` alternates tools / bash
    over a task's runs and from task to task (so one run per task still gives both styles)."""
    if style not in (*STYLES, "mixed"):
        raise ExpertError(f"style {style!r}: expected one of {', '.join(STYLES)} or mixed")
    jobs = []
    for i, spec in enumerate(specs):
        for k in range(runs_per_task):
            st = STYLES[(i + k) % len(STYLES)] if style == "mixed" else style
            jobs.append((spec, st, seed + k))
    return jobs


def run_path(out: Any, instance_id: str, style: str, seed: int) -> Any:
    return out / f"{run_id(instance_id, style, seed)}.srl.jsonl"


def generate_runs(
    jobs: list[tuple[TaskSpec, str, int]],
    out: Any,
    *,
    workers: int = 1,
    replay: bool = True,
    client: docker.DockerClient | None = None,
    on_done: Callable[[str, str], None] | None = None,
) -> GenerateSummary:
    """Make every run of `jobs` not already under `out`; write the ones that resolve and replay (one
    JSONL file per run, written atomically); report the others. `on_done(run_id, status)` after each."""
    import concurrent.futures as cf

    from harness.docker_env import get_client
    from harness.images import ensure_instance_image

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    summary = GenerateSummary()
    todo = []
    for spec, style, seed in jobs:
        path = run_path(out, spec.instance_id, style, seed)
        if path.exists():
            summary.existing.append(str(path))
            if on_done:
                on_done(run_id(spec.instance_id, style, seed), "existing")
        else:
            todo.append((spec, style, seed))
    client = client or (get_client() if todo else None)
    for spec in {s.instance_id: s for s, _, _ in todo}.values():  # build images once, before the pool
        ensure_instance_image(spec, client=client)

    def work(job: tuple[TaskSpec, str, int]) -> tuple[str, str]:
        spec, style, seed = job
        rid = run_id(spec.instance_id, style, seed)
        try:
            run = generate_run(spec, style, seed, client=client, replay=replay)
        except ExpertError as exc:
            return rid, f"failed: {exc}"
        if not run.ok:
            return rid, f"failed: {run.error}"
        path = run_path(out, spec.instance_id, style, seed)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(run.trajectory.model_dump_json() + "\n")
        tmp.replace(path)
        return rid, "written"

    with cf.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="srl-expert") as pool:
        for rid, status in pool.map(work, todo):
            if status == "written":
                summary.written.append(str(out / f"{rid}.srl.jsonl"))
            else:
                summary.failed.append((rid, status.removeprefix("failed: ")))
            if on_done:
                on_done(rid, status)
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def ensure_expert_runs(
    out: Any,
    tasks: str | None = None,
    *,
    style: str = "mixed",
    seed: int = 0,
    runs_per_task: int = 2,
    workers: int = 1,
    client: docker.DockerClient | None = None,
    on_done: Callable[[str, str], None] | None = None,
) -> GenerateSummary:
    """Expert runs over every task of the source `tasks` (default: the bundled pack) under `out`, made
    where missing: the project's default training data (`srl demo`, benchmarks). `summary.files` lists them."""
    from envs.sources import load_tasks

    specs = [t for t in load_tasks(tasks).tasks if t.patch.strip()]
    if not specs:
        raise ExpertError(f"task source {tasks or 'examples'}: no task with a gold patch")
    jobs = plan_jobs(specs, style, seed, runs_per_task)
    return generate_runs(jobs, out, workers=workers, client=client, on_done=on_done)
