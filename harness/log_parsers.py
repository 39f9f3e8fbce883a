"""Pure test-log parsers: log text in, ``{test id: status}`` out, registered by name.

A task names its parser (``pytest``, ``unittest``, ``junit``); :func:`get_parser` looks it up. Parsers
never raise on odd input: a line they do not understand is skipped, and a test they never saw is
simply absent from the map (grading counts an absent test as failed).

Statuses are the SWE-bench ones plus ``XPASS`` (an ``xfail`` test that passed; SWE-bench drops these
lines, pytest itself and its JUnit report count them as passed).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

PASSED = "PASSED"
FAILED = "FAILED"
SKIPPED = "SKIPPED"
ERROR = "ERROR"
XFAIL = "XFAIL"
XPASS = "XPASS"
STATUSES = (PASSED, FAILED, SKIPPED, ERROR, XFAIL, XPASS)

StatusMap = dict[str, str]
LogParser = Callable[[str], StatusMap]

# When one test is reported twice (a pass in the call phase, then an error in teardown), the worse wins.
_SEVERITY = {PASSED: 0, XPASS: 0, XFAIL: 0, SKIPPED: 1, FAILED: 2, ERROR: 3}

_PARSERS: dict[str, LogParser] = {}


def register_parser(name: str) -> Callable[[LogParser], LogParser]:
    """Decorator: make ``fn`` available as ``get_parser(name)``. Names are unique."""

    def deco(fn: LogParser) -> LogParser:
        if name in _PARSERS and _PARSERS[name] is not fn:
            raise ValueError(f"log parser {name!r} is already registered ({_PARSERS[name].__qualname__})")
        _PARSERS[name] = fn
        return fn

    return deco


def get_parser(name: str) -> LogParser:
    """The parser registered as `name`; SWE-bench's row names (``parse_log_django``) are accepted too."""
    try:
        return _PARSERS[name.removeprefix("parse_log_")]
    except KeyError:
        raise KeyError(
            f"unknown log parser {name!r}; expected one of: {', '.join(sorted(_PARSERS))}"
        ) from None


def parser_names() -> list[str]:
    return sorted(_PARSERS)


def _record(status_map: StatusMap, test: str, status: str) -> None:
    old = status_map.get(test)
    if old is None or _SEVERITY[status] >= _SEVERITY[old]:
        status_map[test] = status


# --------------------------------------------------------------------------------------------- pytest

# `-rA` short summary: "PASSED id", "FAILED id - message", "ERROR id - message", "XFAIL id - reason", ...
_SUMMARY_RE = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED) (\S.*)$")
# `-v` progress line: "tests/a.py::test_x[a b] SKIPPED (reason)     [ 21%]"
_VERBOSE_RE = re.compile(
    r"^(?P<id>\S[^\s:]*::.*?) (?P<status>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)(?: \(.*\))?\s+\[\s*\d+%\]\s*$"
)
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# classic / `-vv` line without a percentage: "tests/a.py::test_x PASSED", "t.py::test_y SKIPPED [1] why"
_CLASSIC_RE = re.compile(
    r"^(?P<id>\S[^\s:]*::\S.*?) (?P<status>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)(?: \[\d+\].*| \(.*\))?\s*$"
)


def split_summary_rest(rest: str) -> str:
    """The node id at the start of a short-summary line's rest, without the ``" - message"`` tail.

    Parametrized ids may contain spaces, ``" - "`` and brackets (``test_x[x - y]``): for a bracketed id
    the id ends at the first ``"] - "`` (or the end of the line when it ends with ``]``).
    """
    rest = rest.rstrip()
    head = rest.split(" - ", 1)[0]
    if "[" not in head:
        return head
    cut = rest.find("] - ")
    if cut != -1:
        return rest[: cut + 1]
    if rest.endswith("]"):
        return rest
    return head


@register_parser("pytest")
def parse_pytest(log: str) -> StatusMap:
    """Statuses from pytest output run with ``-rA`` (short summary); ``-v`` progress lines are read too.

    The ``SKIPPED [N] path:line: reason`` summary names no test and is ignored; skipped tests are only
    known from ``-v`` lines.
    """
    status_map: StatusMap = {}
    for raw in log.splitlines():
        line = _ANSI_RE.sub("", raw).rstrip("\r")
        m = _SUMMARY_RE.match(line)
        if m:
            status, rest = m.groups()
            if status == SKIPPED and rest.startswith("["):
                continue
            test = split_summary_rest(rest)
            if test:
                _record(status_map, test, status)
            continue
        m = _VERBOSE_RE.match(line) or _CLASSIC_RE.match(line)
        if m:
            _record(status_map, m["id"], m["status"])
    return status_map


# ------------------------------------------------------------------------------------------- unittest

_UNITTEST_RESULT_RE = re.compile(
    r"^(?P<name>.+?) \.\.\. ?(?P<result>ok|OK|FAIL|ERROR|skipped.*|expected failure|unexpected success)\s*$"
)
_UNITTEST_PENDING_RE = re.compile(r"^(?P<name>.+?) \.\.\. ?(?P<tail>.*)$")
_UNITTEST_HEADER_RE = re.compile(r"^(FAIL|ERROR|UNEXPECTED SUCCESS): (?P<name>\S+ \([\w.]+\))")
_UNITTEST_ID_RE = re.compile(r"^(?P<method>\w+) \((?P<cls>[\w.]+)\)$")
_UNITTEST_STATUS = {
    "ok": PASSED,
    "OK": PASSED,
    "FAIL": FAILED,
    "ERROR": ERROR,
    "expected failure": XFAIL,
    "unexpected success": FAILED,  # unittest counts an unexpected success as a failure of the run
}


def normalize_unittest_id(name: str) -> str:
    """``test_x (pkg.mod.Class.test_x)`` (Python >= 3.11) -> ``test_x (pkg.mod.Class)`` (the classic form)."""
    m = _UNITTEST_ID_RE.match(name.strip())
    if not m:
        return name.strip()
    method, cls = m["method"], m["cls"]
    if cls.endswith("." + method):
        cls = cls[: -len(method) - 1]
    return f"{method} ({cls})"


def _unittest_status(result: str) -> str:
    return SKIPPED if result.startswith("skipped") else _UNITTEST_STATUS[result]


@register_parser("unittest")
def parse_unittest(log: str) -> StatusMap:
    """Statuses from ``python -m unittest -v`` (and Django's runner at verbosity 2).

    Handles the 3.11+ id form, a docstring line after the id (both the id and the docstring are
    recorded, as SWE-bench names such tests by their docstring), a result word printed on a later line
    when the test wrote output, and the ``FAIL: ...`` / ``ERROR: ...`` headers of the failure section.
    """
    status_map: StatusMap = {}
    previous_bare_id: str | None = None
    pending: list[str] = []
    for raw in log.splitlines():
        line = _ANSI_RE.sub("", raw).rstrip("\r").rstrip()
        stripped = line.strip()
        header = _UNITTEST_HEADER_RE.match(stripped)
        if header:
            status = ERROR if header[1] == "ERROR" else FAILED
            _record(status_map, normalize_unittest_id(header["name"]), status)
            continue
        m = _UNITTEST_RESULT_RE.match(stripped)
        if m:
            names = [normalize_unittest_id(m["name"])]
            if previous_bare_id is not None:
                names.append(previous_bare_id)
            for name in names:
                _record(status_map, name, _unittest_status(m["result"]))
            previous_bare_id, pending = None, []
            continue
        m = _UNITTEST_PENDING_RE.match(stripped)
        if m and " ... " in stripped + " ":
            pending = [normalize_unittest_id(m["name"])]
            if previous_bare_id is not None:
                pending.append(previous_bare_id)
            previous_bare_id = None
            continue
        if pending and stripped in _UNITTEST_STATUS:
            for name in pending:
                _record(status_map, name, _UNITTEST_STATUS[stripped])
            pending = []
            continue
        previous_bare_id = normalize_unittest_id(stripped) if _UNITTEST_ID_RE.match(stripped) else None
    return status_map


# ---------------------------------------------------------------------------------------------- junit


def mangle_pytest_nodeid(nodeid: str) -> tuple[str, str]:
    """The ``(classname, name)`` pytest's JUnit XML writer gives a node id.

    ``tests/a.py::TestK::test_x[p]`` -> ``("tests.a.TestK", "test_x[p]")``; ``tests/a.py`` (a collection
    error) -> ``("", "tests.a")``; ``t.py::test_ip[ff::1]`` -> ``("t", "test_ip[ff::1]")``.
    """
    path, bracket, params = nodeid.partition("[")  # parameters may contain "::" themselves
    parts = path.split("::")
    parts[0] = re.sub(r"\.py$", "", parts[0].replace("/", "."))
    return ".".join(parts[:-1]), parts[-1] + bracket + params


def read_junit(xml_text: str | bytes) -> dict[tuple[str, str], str]:
    """``{(classname, name): status}`` for every ``<testcase>`` in a JUnit XML document.

    ``<failure>`` -> FAILED, ``<error>`` -> ERROR (both win over anything else), ``<skipped
    type="pytest.xfail">`` -> XFAIL, other ``<skipped>`` -> SKIPPED, no child -> PASSED. Raises
    ``ValueError`` when the text is not XML.
    """
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise ValueError(f"not a JUnit XML document: {exc}") from None
    result: dict[tuple[str, str], str] = {}
    for case in root.iter("testcase"):
        key = (case.get("classname") or "", case.get("name") or "")
        status = PASSED
        for child in case:
            if child.tag == "failure":
                status = FAILED
            elif child.tag == "error":
                status = ERROR
            elif child.tag == "skipped":
                status = XFAIL if child.get("type") == "pytest.xfail" else SKIPPED
            else:
                continue
            if status in (FAILED, ERROR):
                break
        old = result.get(key)
        if old is None or _SEVERITY[status] >= _SEVERITY[old]:
            result[key] = status
    return result


@register_parser("junit")
def parse_junit(log: str) -> StatusMap:
    """Statuses from a JUnit XML document, keyed ``classname::name`` (just ``name`` without a class).

    Text that is not XML gives an empty map (so every expected test counts as failed).
    """
    start = log.find("<")
    try:
        cases = read_junit(log[start:] if start > 0 else log)
    except ValueError:
        return {}
    return {(f"{cls}::{name}" if cls else name): status for (cls, name), status in cases.items()}


# ------------------------------------------------------------------ the SWE-bench repositories' parsers
#
# SWE-bench names one parser per repository (`envs/swebench_specs/python.json`, ``log_parser``); they are
# registered here under SWE-bench's names without the ``parse_log_`` prefix. Where SWE-bench's own parser
# is wrong the difference is named in tests/test_log_parsers.py.

_OPTION_RE = re.compile(r"^(?P<main>.*?)\[(?P<option>.*)\]$")


def _shorten_path_option(test: str) -> str:
    """``t.py::test_x[/abs/path/to/file.txt]`` -> ``t.py::test_x[/file.txt]`` (SWE-bench's requests,
    pylint and pydicom ids: a parameter that is an absolute path keeps only its last component)."""
    m = _OPTION_RE.match(test)
    if not m:
        return test
    option = m["option"]
    if option.startswith("/") and not option.startswith("//") and "*" not in option:
        option = "/" + option.split("/")[-1]
    return f"{m['main']}[{option}]"


@register_parser("pytest_options")
def parse_pytest_options(log: str) -> StatusMap:
    """pytest output whose parametrized ids carry absolute paths, shortened as SWE-bench lists them."""
    status_map: StatusMap = {}
    for test, status in parse_pytest(log).items():
        _record(status_map, _shorten_path_option(test), status)
    return status_map


@register_parser("pytest_v2")
def parse_pytest_v2(log: str) -> StatusMap:
    """pytest output with colour codes and classic ``id STATUS`` lines (astropy's ``-vv -o
    console_output_style=classic``, scikit-learn, sphinx through tox)."""
    text = _ANSI_RE.sub("", log)
    text = re.sub(r"\[\d+m", "", text)  # colour codes whose escape byte was lost
    return parse_pytest(text)


@register_parser("matplotlib")
def parse_matplotlib(log: str) -> StatusMap:
    """pytest output; enum members in parametrized ids are written as their values, as SWE-bench lists
    them (``MouseButton.LEFT`` -> ``1``, ``MouseButton.RIGHT`` -> ``3``)."""
    return parse_pytest(log.replace("MouseButton.LEFT", "1").replace("MouseButton.RIGHT", "3"))


@register_parser("seaborn")
def parse_seaborn(log: str) -> StatusMap:
    """seaborn's ``pytest --no-header -rA`` output (summary lines, and ``id PASSED`` progress lines)."""
    return parse_pytest(log)


_SYMPY_RESULT_RE = re.compile(r"^(?P<name>test_\w+) (?P<result>ok|F|E|f|s|X|w)(?:\s+\[(?:OK|FAIL)\])?$")
_SYMPY_HEADER_RE = re.compile(r"^_+ (?P<path>\S+\.py):(?P<name>\S+) _+$")
_SYMPY_STATUS = {"ok": PASSED, "F": FAILED, "E": ERROR, "f": XFAIL, "s": SKIPPED, "X": FAILED}


@register_parser("sympy")
def parse_sympy(log: str) -> StatusMap:
    """sympy's ``bin/test -C --verbose``: ``test_name ok|F|E|f|s`` lines, and the failure section's
    ``____ path.py:test_name ____`` headers (recorded as ``path.py:test_name``, FAILED)."""
    status_map: StatusMap = {}
    for raw in log.splitlines():
        line = _ANSI_RE.sub("", raw).strip()
        m = _SYMPY_HEADER_RE.match(line)
        if m:
            _record(status_map, f"{m['path']}:{m['name']}", FAILED)
            continue
        m = _SYMPY_RESULT_RE.match(line)
        if m and m["result"] in _SYMPY_STATUS:
            _record(status_map, m["name"], _SYMPY_STATUS[m["result"]])
    return status_map


_DJANGO_RESULT_RE = re.compile(
    r"^(?P<name>.+?) \.\.\.\s+(?P<result>ok|OK|FAIL|ERROR|skipped\b.*|expected failure|unexpected success)$"
)
_DJANGO_HEADER_RE = re.compile(r"^(?P<kind>FAIL|ERROR): (?P<name>.+)$")
# django__django-7188: migration output on the same line before the test's name
_DJANGO_APPLYING_RE = re.compile(r"^Applying \S+\.\.\.\s*(?=\S)")
_DJANGO_STATUS = {
    "ok": PASSED,
    "OK": PASSED,
    "FAIL": FAILED,
    "ERROR": ERROR,
    "expected failure": XFAIL,
    "unexpected success": FAILED,
}


@register_parser("django")
def parse_django(log: str) -> StatusMap:
    """Django's ``tests/runtests.py --verbosity 2``: ``name ... ok|FAIL|ERROR|skipped '...'``.

    Names are kept as the runner printed them, which is how SWE-bench lists them: ``test_x (mod.Class)``,
    on Python >= 3.11 ``test_x (mod.Class.test_x)``, or a test's docstring line. A result printed on a
    later line (the test wrote output first) belongs to the last pending test; ``FAIL:`` / ``ERROR:``
    headers of the failure section mark their test too (subtest headers carry the parameters).
    """
    status_map: StatusMap = {}
    pending: str | None = None
    for raw in log.splitlines():
        line = _ANSI_RE.sub("", raw).rstrip("\r").strip()
        line = _DJANGO_APPLYING_RE.sub("", line)
        m = _DJANGO_RESULT_RE.match(line)
        if m:
            result = m["result"]
            status = SKIPPED if result.startswith("skipped") else _DJANGO_STATUS[result]
            _record(status_map, m["name"].strip(), status)
            pending = None
            continue
        if " ... " in line:
            pending = line.split(" ... ", 1)[0].strip()
            continue
        m = _DJANGO_HEADER_RE.match(line)
        if m:
            _record(status_map, m["name"].strip(), ERROR if m["kind"] == "ERROR" else FAILED)
            continue
        if pending is not None and line in _DJANGO_STATUS:
            _record(status_map, pending, _DJANGO_STATUS[line])
            pending = None
        elif pending is not None and line.startswith("skipped"):
            _record(status_map, pending, SKIPPED)
            pending = None
    return status_map


# Repository names SWE-bench's tables give its parsers (`parse_log_flask = parse_log_pytest`, ...).
for _alias in ("astroid", "flask", "marshmallow", "pvlib", "pyvista", "sqlfluff", "xarray"):
    register_parser(_alias)(parse_pytest)
for _alias in ("pydicom", "requests", "pylint"):
    register_parser(_alias)(parse_pytest_options)
for _alias in ("astropy", "scikit", "sphinx"):
    register_parser(_alias)(parse_pytest_v2)
