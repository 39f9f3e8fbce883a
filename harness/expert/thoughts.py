"""The expert's thoughts: what the previous observation showed (read from its real text) and why the
next action follows. Pure functions of plain data."""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING, Any

from envs.spec import TESTBED

if TYPE_CHECKING:
    from envs.spec import TaskSpec
from harness.expert.gold import _DEF_RE, Edit, _common_ends, _first_line, failing_tests
from harness.expert.plan import PlanStep

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
    """What the previous observation showed, read from its text (one reader per kind of step)."""
    text = obs.strip()
    kind = prev.kind
    if kind == "orient":
        return _describe_listing(text, rng)
    if kind in ("grep_ident", "grep_test"):
        return _describe_search(prev.info, text, rng)
    if kind in ("view_test", "view_code", "view_fix", "view_wrong"):
        return _describe_view(kind, prev.info, obs, rng)
    if kind in ("test_before", "test_after"):
        return _describe_tests(text)
    if kind == "edit_bad":
        if "did not appear verbatim" in text or "expected one match" in text or "AssertionError" in text:
            return "The replacement failed: my old text does not match the file verbatim (the indentation is off)."
        return "The first edit attempt did not go through."
    if kind == "edit":
        return _describe_edit(prev.info["edit"], text, rng)
    if kind == "diff":
        return _describe_diff(text)
    return ""


def _describe_listing(text: str, rng: random.Random) -> str:
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


def _describe_search(info: dict[str, Any], text: str, rng: random.Random) -> str:
    hits = grep_hits(text) or [  # grep of one file prints line:text without the file name
        (info.get("file", "?"), int(m.group(1)), m.group(2)) for m in re.finditer(r"^(\d+):(.*)$", text, re.M)
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


def _describe_view(kind: str, info: dict[str, Any], obs: str, rng: random.Random) -> str:
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
        return (
            f"{span[0].upper() + span[1:]} are related code, but the change belongs in {info.get('right')}."
        )
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


def _describe_tests(text: str) -> str:
    s = pytest_summary(text)
    if s["no_tests"] and not s["counts"]:
        return "The test run did not find the tests."
    msg = f"The test run ends with {_counts_text(s['counts'])}"
    if s["failed"]:
        msg += f"; failing: {', '.join(f'`{f.split(chr(58) * 2)[-1]}`' for f in s['failed'][:3])}"
    if s["error"]:
        msg += f" (`{_short(s['error'], 80)}`)"
    return msg + "."


def _describe_edit(e: Edit, text: str, rng: random.Random) -> str:
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


def _describe_diff(text: str) -> str:
    files = re.findall(r"^diff --git a/(\S+)", text, re.MULTILINE) or re.findall(
        r"^\s*(\S+)\s+\|", text, re.MULTILINE
    )
    plus = len(re.findall(r"^\+(?!\+\+)", text, re.MULTILINE))
    minus = len(re.findall(r"^-(?!--)", text, re.MULTILINE))
    if plus or minus:
        return f"The diff changes {', '.join(files) or 'the code'} (+{plus}/-{minus} lines) and nothing else."
    return f"The diff touches {', '.join(files) or 'only the files I edited'}."


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
