"""The problem statement of a synthesized task, written from the failing tests' output (pytest's
failure sections and summary lines) without naming the mutated function or file."""

import re

from envs.spec import is_test_path

# ------------------------------------------------------------------------------------------ statements

_SECTION_RE = re.compile(r"^_{3,} (?P<title>.+?) _{3,}$")
_SUMMARY_RE = re.compile(r"^(?:FAILED|ERROR) (?P<rest>\S.*)$")
_BANNER_RE = re.compile(r"^={3,} .*\S.* ={3,}$")
_ADDRESS_RE = re.compile(r" at 0x[0-9a-fA-F]+")
_MAX_LINE = 200


def failure_sections(output: str) -> dict[str, list[str]]:
    """pytest's failure sections (``-rA --tb=short [-l]``) by the header title (``test_x`` or
    ``Class.test_x``), each as its lines."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        m = _SECTION_RE.match(line)
        if m:
            current = sections.setdefault(m["title"], [])
            continue
        if _BANNER_RE.match(line):
            current = None  # the next "== short test summary info ==" / "== PASSES ==" banner
            continue
        if current is not None:
            current.append(line)
    return sections


def _section_for(test_id: str, sections: dict[str, list[str]]) -> list[str]:
    """The section of `test_id` (pytest titles it by class + function, without the file)."""
    parts = test_id.split("::")[1:]
    for title in (".".join(parts), parts[-1] if parts else test_id):
        if title in sections:
            return sections[title]
        for name, lines in sections.items():  # a subtest: "Class.test_x (param=1)"
            if name.startswith(title + " ("):
                return lines
    return []


_FRAME_RE = re.compile(r"^(?P<path>[^\s:]+\.py):\d+: in \S+")


def _failure_lines(section: list[str]) -> list[str]:
    """What a failure section shows from the tests' side: for frames in test files, the code lines and
    local variables pytest prints (``--tb=short -l``: observed vs expected values even where an assert in a
    helper module was not rewritten), and the ``E`` lines (assertion with values, or exception + message);
    frames in the package's own files are left out."""
    out: list[str] = []
    in_test = False
    for line in section:
        if line.startswith("----"):
            break  # captured output sections follow the traceback
        m = _FRAME_RE.match(line)
        if m:
            in_test = is_test_path(m["path"])
            continue
        if line.startswith("E ") or (in_test and line.strip()):
            line = _ADDRESS_RE.sub("", line.rstrip())  # object addresses differ from run to run
            out.append(line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 3] + "...")
    return out


def _summary_messages(output: str) -> dict[str, str]:
    from_summary: dict[str, str] = {}
    for line in output.splitlines():
        m = _SUMMARY_RE.match(line)
        if m and " - " in m["rest"]:
            test, _, message = m["rest"].partition(" - ")
            from_summary[test.strip()] = message.strip()
    return from_summary


def problem_statement(
    package: str,
    failing: list[str],
    output: str,
    hide: list[str],
    max_tests: int = 4,
    max_lines: int = 14,
) -> str:
    """An issue-like statement written from the failing tests' output: which tests fail and what they
    observed (pytest's ``E`` lines: the assertion with observed vs expected values, or the exception type
    and message). Lines that mention any word in `hide` (the mutated function's name, the file) are left
    out, unless a failing test's own name contains it."""
    names = " ".join(failing)
    words = [w for w in hide if w and w not in names]
    # a name is hidden wherever it occurs (also inside `orig_check_valid`); only names shorter than four
    # characters need letters or digits around them to count as another word (`get` in `together`)
    pats = [
        re.compile(rf"(?<![A-Za-z0-9]){re.escape(w)}(?![A-Za-z0-9])") if len(w) < 4 else None for w in words
    ]

    def hidden(line: str) -> bool:
        return any((p.search(line) if p else w in line) for w, p in zip(words, pats, strict=True))

    sections = failure_sections(output)
    messages = _summary_messages(output)
    suite = "the test suite" if hidden(package) else f"the {package} test suite"  # e.g. tabulate.tabulate
    n = len(failing)
    lines = [
        f"{n} test{'s' if n != 1 else ''} of {suite} fail{'s' if n == 1 else ''}; "
        "the rest of the suite passes.",
        "",
    ]
    for test in failing[:max_tests]:
        shown = [ln for ln in _failure_lines(_section_for(test, sections)) if not hidden(ln)][:max_lines]
        if not any(ln.startswith("E ") for ln in shown):
            msg = messages.get(test, "")
            if msg and not hidden(msg):
                shown.append("E   " + msg)
            elif msg:
                shown.append("E   " + msg.split(":", 1)[0].split()[0])
        lines.append(f"`{test}` fails:")
        if shown:
            lines += ["```", *shown, "```"]
        lines.append("")
    if n > max_tests:
        rest = ", ".join(f"`{t}`" for t in failing[max_tests : max_tests + 8])
        more = f" and {n - max_tests - 8} more" if n > max_tests + 8 else ""
        lines += [f"Also failing: {rest}{more}.", ""]
    lines.append("The failing tests should pass again without breaking the others.")
    return "\n".join(lines).rstrip() + "\n"
