"""The expert's plan for one run: which actions, in which (seeded) order. Pure: the same task, facts,
style and seed give the same plan."""

from __future__ import annotations

import random
import re
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from envs.spec import TESTBED
from trajectories.schema import ToolCall

if TYPE_CHECKING:
    from envs.spec import TaskSpec
from harness.expert.gold import (
    STYLES,
    Edit,
    ExpertError,
    FailingTest,
    _first_line,
    apply_edits,
    failing_tests,
    gold_edits,
    gold_identifiers,
    patched_files,
)

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
    """The expert's actions for one run (pure: the same inputs and seed give the same plan).

    The stages below draw from one seeded `rng` in a fixed order (orientation, exploration, a wrong
    turn, reading the hunks, a test run before the fix, the edits, the checks): reordering them changes
    every generated run.
    """
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
    replace_edits = [e for e in edits if e.kind == "replace"]
    steps = [_orient_step(style, rng)]
    steps += _explore_steps(style, facts, tests, idents, rng)
    steps += _wrong_turn_steps(style, facts, replace_edits, [e.path for e in edits], idents, rng)
    steps += _read_code_steps(style, facts, replace_edits, rng)
    # -- optionally run the failing tests before the fix, when they exist at the base commit
    present = [t.node for t in tests if facts.collected is not None and t.node in facts.collected]
    files = sorted({t.file for t in tests if t.file and t.file in facts.test_sources})
    targets = present or files
    if present and rng.random() < 0.5:
        steps.append(PlanStep("test_before", _bash(_test_command(spec, targets, rng)), {"targets": targets}))
    steps += _edit_steps(style, facts, edits, rng)
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


def _orient_step(style: str, rng: random.Random) -> PlanStep:
    """A first look at the repository: the editor's directory view or a listing command."""
    if style == "tools" and rng.random() < 0.5:
        return PlanStep(
            "orient", ToolCall(name="str_replace_editor", arguments={"command": "view", "path": TESTBED})
        )
    cmd = rng.choice(
        (
            "ls",
            "ls -la",
            "git ls-files | head -n 60",
            "find . -name '*.py' -not -path './.git/*' | sort | head -n 60",
        )
    )
    return PlanStep("orient", _bash(cmd))


def _explore_steps(
    style: str, facts: RepoFacts, tests: list[FailingTest], idents: list[str], rng: random.Random
) -> list[PlanStep]:
    """The failing test (found and read) and the code (grep for the gold names), in a seeded order."""
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
    return [step for group in explore for step in group]


def _wrong_turn_steps(
    style: str,
    facts: RepoFacts,
    replace_edits: list[Edit],
    gold_paths: list[str],
    idents: list[str],
    rng: random.Random,
) -> list[PlanStep]:
    """Sometimes a wrong turn: a look at a neighbouring file before the right one."""
    if not (replace_edits and rng.random() < 0.35):
        return []
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
    if not siblings:
        return []
    wrong = rng.choice(sorted(siblings))
    return [
        PlanStep(
            "view_wrong",
            _view_call(style, wrong, 1, rng.choice((30, 40, 60)), rng),
            {"file": wrong, "ident": idents[0] if idents else None, "right": target},
        )
    ]


def _read_code_steps(
    style: str, facts: RepoFacts, replace_edits: list[Edit], rng: random.Random
) -> list[PlanStep]:
    """Views of the code around the hunks (base line numbers: nothing is edited yet)."""
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
    return [
        PlanStep(
            "view_code",
            _view_call(style, path, first, last, rng),
            {"file": path, "first": first, "last": last, "focus": focus},
        )
        for path, first, last, focus in windows[:max_views]
    ]


def _edit_steps(style: str, facts: RepoFacts, edits: list[Edit], rng: random.Random) -> list[PlanStep]:
    """The edits, with an occasional one whose old text does not match, then its correction."""
    steps: list[PlanStep] = []
    python = rng.choice(("python3", "python"))
    bad_done = False
    current = dict(facts.originals)
    dirs = {str(p) for f in facts.files for p in PurePosixPath(f).parents}
    for e in edits:
        if e.kind == "replace" and not bad_done and rng.random() < 0.25:
            wrong_old = _misindent(e.old)
            if wrong_old and (current.get(e.path) or "").count(wrong_old) == 0:
                bad_done = True
                steps += _bad_edit_steps(style, e, wrong_old, python, _n_lines(current.get(e.path)), rng)
        parent = str(PurePosixPath(e.path).parent)
        if e.kind == "create" and style == "tools" and parent != "." and parent not in dirs:
            steps.append(PlanStep("mkdir", _bash(f"mkdir -p {shlex.quote(parent)}"), {"dir": parent}))
            dirs.add(parent)
        steps.append(PlanStep("edit", _edit_call(style, e, python), {"file": e.path, "edit": e}))
        current = apply_edits(current, [e])
    return steps


def _bad_edit_steps(
    style: str, e: Edit, wrong_old: str, python: str, n: int, rng: random.Random
) -> list[PlanStep]:
    """A replacement whose old text is misindented (it fails), then a look at the exact lines."""
    first, last = max(1, e.line - 2), min(n, e.end_line + 2)
    return [
        PlanStep(
            "edit_bad",
            _edit_call(style, e, python, old=wrong_old),
            {"file": e.path, "edit": e, "fails": True},
        ),
        PlanStep(
            "view_fix",
            _view_call(style, e.path, first, last, rng),
            {"file": e.path, "first": first, "last": last, "focus": _first_line(e.old)},
        ),
    ]


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
