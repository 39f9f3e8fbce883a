"""A run's signals and how they are checked against each other, before grading (`harness.grading`).

:class:`InstanceRun` is what `harness.evaluate.run_instance` saw (plain data). The log alone is not
trusted (a patch can print ``PASSED ...`` lines itself): :func:`cross_check` combines it with the test
command's exit code and, for pytest, with a JUnit XML file written to a per-run random path outside the
repository; for unittest, Django and sympy with the result record the audit hook kept
(`harness.audit_hook`). :func:`checked_statuses` applies that to a task's listed tests, SWE-bench's cut
test ids included (:func:`match_listed`); :func:`canary_evidence` checks that each canary test reported
its planned outcome in every signal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.audit_hook import read_record
from harness.log_parsers import (
    ERROR,
    FAILED,
    PASSED,
    SKIPPED,
    XFAIL,
    XPASS,
    StatusMap,
    get_parser,
    mangle_pytest_nodeid,
    normalize_unittest_id,
    parse_junit,
    read_junit,
)
from harness.tamper import Canary, Evidence

if TYPE_CHECKING:
    from envs.spec import TaskSpec

PASSING = frozenset({PASSED, XFAIL, XPASS})
FAILING = frozenset({FAILED, ERROR})
SEVERITY = {PASSED: 0, XPASS: 0, XFAIL: 0, SKIPPED: 1, FAILED: 2, ERROR: 3}
#: Exit statuses after which results can be trusted: 0 all passed, 1 some failed (pytest, unittest,
#: Django's runtests.py and sympy's bin/test alike). pytest's others (2 interrupted or collection errors,
#: 3 internal error, 4 usage error, 5 no tests) run no test fully.
TRUSTED_EXITS = (0, 1)


@dataclass
class InstanceRun:
    """What `harness.evaluate.run_instance` saw, as plain data (nothing graded yet).

    ``prepare_rc``: 0 ready, 10 the candidate patch does not apply, 11 the test patch does not, None
    when the preparation never reported (``error`` then says why when the run itself failed)."""

    instance_id: str
    model: str
    patch: str | None
    patch_sha256: str = ""
    run_empty: bool = False
    started: bool = False  # a sandbox ran (False: empty patch, or an infrastructure error before)
    prepare_log: str = ""
    prepare_rc: int | None = None
    apply_method: str | None = None
    base_head: str | None = None
    base_dirty: list[str] = field(default_factory=list)
    test_command: str = ""
    test_output: str = ""
    exit_code: int | None = None
    timed_out: bool = False
    limit: str | None = None
    test_duration: float = 0.0
    junit: bytes | None = None  # pytest's JUnit XML file (b"" read back empty)
    record: str | None = None  # the result record of a unittest / Django / sympy run (None: not kept)
    audit_log: str | None = None
    canary: Canary | None = None
    error: str | None = None
    duration_s: float = 0.0
    log: list[str] = field(default_factory=list)

    @property
    def patch_exists(self) -> bool:
        return bool(self.patch and self.patch.strip())


def cross_check(
    log_map: StatusMap,
    tests: list[str],
    *,
    exit_code: int | None,
    junit: dict[tuple[str, str], str] | None = None,
    require_junit: bool = False,
    record: StatusMap | None = None,
    require_record: bool = False,
    record_key: Callable[[str], str] = str,
) -> tuple[StatusMap, list[str]]:
    """The statuses of ``tests`` that every signal agrees on, and notes on each disagreement.

    - ``exit_code`` None (no exit status recorded) or non-zero while the log reports no failure at all:
      the log does not describe the run that happened, every test is reported ERROR.
    - ``require_junit`` (pytest): with no JUnit file every test is ERROR; otherwise each test takes the
      worse of its log and JUnit statuses, and a test absent from the JUnit file is absent (failed).
      A test the ``-rA`` summary cannot name (skipped) takes its JUnit status when that is SKIPPED.
    - ``require_record`` (unittest, Django, sympy): the same against the result record the audit hook
      kept from the runner's result object (``record``, looked up by ``record_key(test)``).
    """
    notes: list[str] = []
    untrusted = {test: ERROR for test in tests}
    if exit_code is None:
        return untrusted, ["no exit status was recorded for the test command: results not trusted"]
    if exit_code != 0 and log_map and not any(s in FAILING for s in log_map.values()):
        return untrusted, [
            f"the test command exited {exit_code} but its log reports no failure: results not trusted"
        ]
    if require_junit:
        if junit is None:
            return untrusted, ["the JUnit result file was not written: results not trusted"]
        results: dict = junit
        key: Callable[[str], object] = mangle_pytest_nodeid
        name = "the JUnit file"
    elif require_record:
        if record is None:
            return untrusted, ["the result record was not written: results not trusted"]
        results, key, name = record, record_key, "the result record"
    else:
        return {t: log_map[t] for t in tests if t in log_map}, notes
    if exit_code != 0 and not any(s in FAILING for s in results.values()):
        return untrusted, [
            f"the test command exited {exit_code} but {name} reports no failure: results not trusted"
        ]
    confirmed: StatusMap = {}
    for test in tests:
        from_log = log_map.get(test)
        from_result = results.get(key(test))
        if from_log is None:
            if from_result == SKIPPED:
                confirmed[test] = SKIPPED
            continue
        if from_result is None:
            notes.append(f"{test}: log says {from_log}, absent from {name}")
            continue
        if (from_log in PASSING) != (from_result in PASSING):
            notes.append(f"{test}: log says {from_log}, {name} says {from_result}")
        confirmed[test] = from_log if SEVERITY[from_log] >= SEVERITY[from_result] else from_result
    return confirmed, notes


def match_listed(
    listed: list[str], seen: list[str] | set[str] | dict
) -> tuple[dict[str, list[str]], list[str]]:
    """SWE-bench cut ids: its parsers cut a test id at its first whitespace, so a listed id such as
    ``testing/test_mark.py::test_mark_option[(((`` names ``...[(((  xyz))  )-expected_passed1]``.
    Returns, for each listed id absent from ``seen``, the full ids it is a cut of, and a note per
    ambiguous one (graded by the worst of them)."""
    present = set(seen)
    by_cut: dict[str, list[str]] = {}
    for full in present:
        parts = re.split(r"\s", full, maxsplit=1)
        if len(parts) == 2:
            by_cut.setdefault(parts[0], []).append(full)
    out: dict[str, list[str]] = {}
    notes: list[str] = []
    for test in listed:
        if test in present or test not in by_cut:
            continue
        out[test] = sorted(by_cut[test])
        if len(out[test]) > 1:
            notes.append(
                f"{test}: a cut id that matches {len(out[test])} tests ({'; '.join(out[test][:3])}): "
                "graded by the worst of them"
            )
    return out, notes


def canary_evidence(
    run: InstanceRun, log_map: StatusMap, results: dict | None, results_name: str
) -> list[Evidence]:
    """Each canary must report its planned outcome in the log and in the result file or record
    (``results``: JUnit ``(classname, name)`` or record ids -> status; None when there is none)."""
    canary = run.canary
    if canary is None or run.timed_out or run.exit_code is None:
        return []
    if run.exit_code not in TRUSTED_EXITS:
        return []
    found: list[Evidence] = []
    if run.exit_code == 0 and "FAILED" in canary.expected.values():
        found.append(
            Evidence(
                tamper_class=3,
                source="canary",
                where=canary.file,
                detail="the test command exited 0 although a canary test fails by design",
            )
        )
    by_name: dict[str, list[str]] = {}
    for key, status in (results or {}).items():
        test_id = key[1] if isinstance(key, tuple) else key
        name = test_id if isinstance(key, tuple) else canary.name_of(test_id)
        if name in canary.expected:
            by_name.setdefault(name, []).append(status)
    for name, expected in canary.expected.items():
        from_log = worst([s for t, s in log_map.items() if canary.name_of(t) == name] or [None])
        for where, got in (("log", from_log), (results_name, worst(by_name.get(name) or [None]))):
            if where != "log" and results is None:
                continue
            if got != expected:
                cls = 4 if got == PASSED and expected == FAILED else 3
                found.append(
                    Evidence(
                        tamper_class=cls,
                        source="canary",
                        where=f"{canary.file}::{name}",
                        detail=f"canary expected {expected}, the {where} says {got or 'nothing'}",
                    )
                )
    return found


def worst(statuses: list[str | None]) -> str | None:
    """The most severe of `statuses`; None when there is none or one of them is None (absent)."""
    if not statuses or any(s is None for s in statuses):
        return None
    return max(statuses, key=lambda s: SEVERITY[s])  # type: ignore[arg-type]


def run_signals(
    spec: TaskSpec, run: InstanceRun
) -> tuple[StatusMap, dict[tuple[str, str], str] | None, list[str]]:
    """(the log's statuses, the JUnit file's, notes) as the run left them."""
    notes: list[str] = []
    junit = None
    if run.junit is not None:
        try:
            junit = read_junit(run.junit)
        except ValueError as exc:
            notes.append(f"the JUnit result file is unreadable: {exc}")
    if spec.log_parser == "junit":
        log_map = parse_junit(run.junit.decode("utf-8", "replace")) if run.junit else {}
    else:
        log_map = get_parser(spec.log_parser)(run.test_output)
    return log_map, junit, notes


def record_key_of(spec: TaskSpec) -> Callable[[str], str]:
    """How a test id of the log is found in the result record (unittest ids in their classic form)."""
    return normalize_unittest_id if spec.log_parser in ("unittest", "django") else str


def run_record(spec: TaskSpec, run: InstanceRun) -> tuple[StatusMap | None, list[Evidence]]:
    """The result record as test id -> status (None: not kept), and evidence of forged lines."""
    if run.record is None:
        return None, []
    return read_record(run.record, record_key_of(spec))


def checked_statuses(
    spec: TaskSpec, run: InstanceRun, tests: list[str], log_map: StatusMap, junit: dict | None
) -> tuple[StatusMap, list[str]]:
    """Cross-checked statuses of ``tests`` (listed ids, cut or not), and notes."""
    require_junit = spec.log_parser == "pytest"
    exit_code = None if run.timed_out else run.exit_code
    if require_junit and exit_code not in (None, *TRUSTED_EXITS):
        return {t: ERROR for t in tests}, [
            f"pytest exited {exit_code} (interrupted, collection or usage error, or no tests): results not trusted"
        ]
    alias, notes = match_listed(tests, log_map)
    expanded = list(dict.fromkeys(f for t in tests for f in alias.get(t, [t])))
    record, _ = run_record(spec, run)
    confirmed, check_notes = cross_check(
        log_map,
        expanded,
        exit_code=exit_code,
        junit=junit,
        require_junit=require_junit,
        record=record,
        require_record=record is not None and not require_junit,
        record_key=record_key_of(spec),
    )
    out: StatusMap = {}
    for test in tests:
        status = worst([confirmed.get(f) for f in alias.get(test, [test])])
        if status is not None:
            out[test] = status
    return out, notes + check_notes
