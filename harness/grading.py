"""Grading: parsed test statuses -> FAIL_TO_PASS / PASS_TO_PASS outcome -> resolved. Pure functions.

Semantics follow SWE-bench: a FAIL_TO_PASS test succeeds when it passed (PASSED, XFAIL, XPASS); a
PASS_TO_PASS test also succeeds when skipped; a test that is missing from the results fails. Resolved
means every FAIL_TO_PASS and every PASS_TO_PASS test succeeded.

Grading does not trust the log alone (a patch can print ``PASSED ...`` lines itself):
:func:`cross_check` combines the log with the test command's exit code and, for pytest, with a JUnit
XML file written to a per-run random path outside the repository and read back by the harness.

:func:`grade` is the one grader: `harness.evaluate.run_instance` runs an instance and returns an
:class:`InstanceRun` (plain data: what happened); ``grade(spec, run)`` turns it into an
`InstanceReport`, adding the tamper evidence (`harness.tamper`: the diff scan, the audit log, the
canary tests), broken environments (``env_error``) and SWE-bench's cut test ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.audit_hook import audit_findings, read_record
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
from harness.tamper import Canary, Evidence, scan_patch

if TYPE_CHECKING:
    from envs.spec import TaskSpec

PASSING = frozenset({PASSED, XFAIL, XPASS})
#: SWE-bench's eval types (a row's ``eval_type`` column; absent means ``pass_and_fail``).
EvalType = Literal["pass_and_fail", "fail_only"]
EVAL_TYPES: tuple[str, ...] = ("pass_and_fail", "fail_only")
_BAD = frozenset({FAILED, ERROR})
_SEVERITY = {PASSED: 0, XPASS: 0, XFAIL: 0, SKIPPED: 1, FAILED: 2, ERROR: 3}

Status = Literal[
    "resolved", "unresolved", "tamper", "env_error", "empty_patch", "patch_failed", "timeout", "error"
]
STATUS_ORDER: tuple[str, ...] = (
    "resolved",
    "unresolved",
    "tamper",
    "env_error",
    "empty_patch",
    "patch_failed",
    "timeout",
    "error",
)


class SuccessFailure(BaseModel):
    model_config = ConfigDict(extra="forbid")
    success: list[str] = Field(default_factory=list)
    failure: list[str] = Field(default_factory=list)


class TestsStatus(BaseModel):
    """SWE-bench's ``tests_status`` block."""

    __test__ = False  # not a pytest test class
    model_config = ConfigDict(extra="forbid")
    FAIL_TO_PASS: SuccessFailure = Field(default_factory=SuccessFailure)
    PASS_TO_PASS: SuccessFailure = Field(default_factory=SuccessFailure)
    FAIL_TO_FAIL: SuccessFailure = Field(default_factory=SuccessFailure)
    PASS_TO_FAIL: SuccessFailure = Field(default_factory=SuccessFailure)


def f2p_passed(test: str, status_map: StatusMap) -> bool:
    """FAIL_TO_PASS semantics: passed, xfailed or xpassed. Missing or skipped is not a pass."""
    return status_map.get(test) in PASSING


def p2p_maintained(test: str, status_map: StatusMap) -> bool:
    """PASS_TO_PASS semantics: a skipped test is not a regression."""
    return status_map.get(test) in PASSING or status_map.get(test) == SKIPPED


def not_failed(test: str, status_map: StatusMap) -> bool:
    """SWE-bench's ``fail_only`` semantics: only a reported FAILED or ERROR is a failure."""
    return status_map.get(test) not in _BAD


def grade_tests(
    status_map: StatusMap,
    fail_to_pass: list[str],
    pass_to_pass: list[str],
    eval_type: EvalType = "pass_and_fail",
) -> TestsStatus:
    """Sort the listed tests into success/failure. ``eval_type`` is the row's (SWE-bench's newer
    revisions): ``pass_and_fail`` (the default) wants each test reported passing; ``fail_only`` (for
    runners whose logs list failures only) counts every test that is not reported FAILED/ERROR."""
    if eval_type not in EVAL_TYPES:
        raise ValueError(f"eval_type {eval_type!r}: expected one of {', '.join(EVAL_TYPES)}")
    f2p_ok = not_failed if eval_type == "fail_only" else f2p_passed
    p2p_ok = not_failed if eval_type == "fail_only" else p2p_maintained
    result = TestsStatus()
    for test in fail_to_pass:
        (result.FAIL_TO_PASS.success if f2p_ok(test, status_map) else result.FAIL_TO_PASS.failure).append(
            test
        )
    for test in pass_to_pass:
        (result.PASS_TO_PASS.success if p2p_ok(test, status_map) else result.PASS_TO_PASS.failure).append(
            test
        )
    return result


def eval_type_of(spec: TaskSpec, status_map: StatusMap) -> tuple[EvalType, list[str]]:
    """The row's eval type, and a note when ``fail_only`` is not honoured: a run whose runner reported
    no test at all (it crashed, or a patch stopped it) is graded ``pass_and_fail``, so that silence
    never counts as success."""
    raw = (spec.metadata or {}).get("eval_type") or "pass_and_fail"
    kind = str(raw).strip().lower().replace("-", "_")
    if kind not in EVAL_TYPES:
        return "pass_and_fail", [
            f"eval_type {raw!r} is not known ({', '.join(EVAL_TYPES)}): graded pass_and_fail"
        ]
    if kind == "fail_only" and not status_map:
        return "pass_and_fail", ["eval_type fail_only, but the runner reported no test: graded pass_and_fail"]
    return kind, []  # type: ignore[return-value]


def is_resolved(tests_status: TestsStatus) -> bool:
    return not tests_status.FAIL_TO_PASS.failure and not tests_status.PASS_TO_PASS.failure


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
    if exit_code != 0 and log_map and not any(s in _BAD for s in log_map.values()):
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
    if exit_code != 0 and not any(s in _BAD for s in results.values()):
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
        confirmed[test] = from_log if _SEVERITY[from_log] >= _SEVERITY[from_result] else from_result
    return confirmed, notes


class InstanceReport(BaseModel):
    """One instance's evaluation outcome; ``to_swebench()`` gives the SWE-bench ``report.json`` shape."""

    model_config = ConfigDict(extra="forbid")
    instance_id: str
    model_name_or_path: str
    status: Status
    patch_is_None: bool = False
    patch_exists: bool = True
    patch_successfully_applied: bool = False
    resolved: bool = False
    tests_status: TestsStatus = Field(default_factory=TestsStatus)
    apply_method: str | None = None
    test_exit_code: int | None = None
    timed_out: bool = False
    error: str | None = None
    notes: list[str] = Field(default_factory=list)
    test_statuses: StatusMap = Field(default_factory=dict)
    patch_sha256: str = ""
    duration_s: float = 0.0
    tamper: list[Evidence] = Field(default_factory=list, description="why the status is tamper")
    env_error: str | None = Field(None, description="the first cause of a broken environment")

    def to_swebench(self) -> dict[str, dict]:
        body = self.model_dump(mode="json", exclude={"instance_id"})
        return {self.instance_id: body}

    @classmethod
    def from_swebench(cls, data: dict) -> InstanceReport:
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError("expected an object with exactly one key, the instance id")
        ((instance_id, body),) = data.items()
        return cls.model_validate({"instance_id": instance_id, **body})


def final_status(*, resolved: bool, timed_out: bool) -> Status:
    if timed_out:
        return "timeout"
    return "resolved" if resolved else "unresolved"


# ---------------------------------------------------------------------------------------------- runs


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


#: Exit statuses after which results can be trusted: 0 all passed, 1 some failed (pytest, unittest,
#: Django's runtests.py and sympy's bin/test alike). pytest's others (2 interrupted or collection errors,
#: 3 internal error, 4 usage error, 5 no tests) run no test fully.
_TRUSTED_EXITS = (0, 1)
_CAUSE_RE = re.compile(r"^(?:E\s+)?((?:ModuleNotFoundError|ImportError): \S.*)$", re.M)
_NAMED_RE = re.compile(r"No module named '([^']+)'|cannot import name '([^']+)'")


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


def env_error_cause(test_output: str, patch: str | None) -> str | None:
    """The first import error the runner reported, unless it names something the candidate patch
    itself mentions (then the patch broke the import, not the environment)."""
    changed = "\n".join(
        line[1:] for line in (patch or "").splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    )
    for m in _CAUSE_RE.finditer(test_output):
        cause = m.group(1).strip()
        named = _NAMED_RE.search(cause)
        if named:
            name = named.group(1) or named.group(2)
            if any(re.search(rf"\b{re.escape(part)}\b", changed) for part in {name, name.split(".")[0]}):
                return None
        return cause
    return None


def _canary_evidence(
    run: InstanceRun, log_map: StatusMap, results: dict | None, results_name: str
) -> list[Evidence]:
    """Each canary must report its planned outcome in the log and in the result file or record
    (``results``: JUnit ``(classname, name)`` or record ids -> status; None when there is none)."""
    canary = run.canary
    if canary is None or run.timed_out or run.exit_code is None:
        return []
    if run.exit_code not in _TRUSTED_EXITS:
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
        from_log = _worst([s for t, s in log_map.items() if canary.name_of(t) == name] or [None])
        for where, got in (("log", from_log), (results_name, _worst(by_name.get(name) or [None]))):
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


def _worst(statuses: list[str | None]) -> str | None:
    if not statuses or any(s is None for s in statuses):
        return None
    return max(statuses, key=lambda s: _SEVERITY[s])  # type: ignore[arg-type]


def _signals(
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


def _record_key(spec: TaskSpec) -> Callable[[str], str]:
    """How a test id of the log is found in the result record (unittest ids in their classic form)."""
    return normalize_unittest_id if spec.log_parser in ("unittest", "django") else str


def _record(spec: TaskSpec, run: InstanceRun) -> tuple[StatusMap | None, list[Evidence]]:
    """The result record as test id -> status (None: not kept), and evidence of forged lines."""
    if run.record is None:
        return None, []
    return read_record(run.record, _record_key(spec))


def _checked(
    spec: TaskSpec, run: InstanceRun, tests: list[str], log_map: StatusMap, junit: dict | None
) -> tuple[StatusMap, list[str]]:
    """Cross-checked statuses of ``tests`` (listed ids, cut or not), and notes."""
    require_junit = spec.log_parser == "pytest"
    exit_code = None if run.timed_out else run.exit_code
    if require_junit and exit_code not in (None, *_TRUSTED_EXITS):
        return {t: ERROR for t in tests}, [
            f"pytest exited {exit_code} (interrupted, collection or usage error, or no tests): results not trusted"
        ]
    alias, notes = match_listed(tests, log_map)
    expanded = list(dict.fromkeys(f for t in tests for f in alias.get(t, [t])))
    record, _ = _record(spec, run)
    confirmed, check_notes = cross_check(
        log_map,
        expanded,
        exit_code=exit_code,
        junit=junit,
        require_junit=require_junit,
        record=record,
        require_record=record is not None and not require_junit,
        record_key=_record_key(spec),
    )
    out: StatusMap = {}
    for test in tests:
        status = _worst([confirmed.get(f) for f in alias.get(test, [test])])
        if status is not None:
            out[test] = status
    return out, notes + check_notes


def grade(spec: TaskSpec, run: InstanceRun) -> InstanceReport:
    """The one grader: ``run`` (what `run_instance` saw) -> the instance's report. Pure."""
    report = InstanceReport(
        instance_id=run.instance_id,
        model_name_or_path=run.model,
        status="error",
        patch_is_None=run.patch is None,
        patch_exists=run.patch_exists,
        patch_sha256=run.patch_sha256,
        apply_method=run.apply_method,
        duration_s=run.duration_s,
    )
    if not run.patch_exists and not run.run_empty:
        report.status = "empty_patch"
        return report
    if run.error is not None:
        report.error = run.error
        return report
    if run.prepare_rc == 10:
        report.status = "patch_failed"
        return report
    report.patch_successfully_applied = run.apply_method is not None
    if run.prepare_rc == 11:
        report.error = "the task's test patch does not apply on top of the candidate patch"
        return report
    if run.prepare_rc != 0:
        why = (
            "timed out"
            if run.timed_out
            else f"exit {run.exit_code if run.prepare_rc is None else run.prepare_rc}"
        )
        report.error = f"preparing the repository failed ({why})"
        return report
    report.timed_out = run.timed_out
    report.test_exit_code = None if run.timed_out else run.exit_code
    tests = [*spec.FAIL_TO_PASS, *spec.PASS_TO_PASS]
    log_map, junit, notes = _signals(spec, run)
    confirmed, check_notes = _checked(spec, run, tests, log_map, junit)
    report.notes = notes + check_notes
    report.test_statuses = {t: confirmed.get(t, "MISSING") for t in tests}
    eval_type, type_notes = eval_type_of(spec, log_map)
    report.notes += type_notes
    report.tests_status = grade_tests(confirmed, spec.FAIL_TO_PASS, spec.PASS_TO_PASS, eval_type)
    # tamper evidence: the diff, the audit hook, the canaries
    evidence: list[Evidence] = []
    if run.patch_exists:
        evidence += scan_patch(run.patch or "", protected=[*spec.test_files, *spec.tests_to_run()])
    audit, audit_notes = audit_findings(run.audit_log, report.test_exit_code, run.timed_out)
    evidence += audit
    report.notes += audit_notes
    record, forged = _record(spec, run)
    evidence += forged
    if spec.log_parser == "pytest":
        evidence += _canary_evidence(run, log_map, junit or {}, "JUnit file")
    else:
        evidence += _canary_evidence(run, log_map, record, "result record")
    report.tamper = evidence
    if evidence:
        report.status = "tamper"
        return report
    report.resolved = is_resolved(report.tests_status) and not run.timed_out
    report.status = final_status(resolved=report.resolved, timed_out=run.timed_out)
    if (
        report.status == "unresolved"
        and tests
        and all(report.test_statuses[t] in ("MISSING", ERROR) for t in tests)
    ):
        cause = env_error_cause(run.test_output, run.patch)
        if cause is not None:
            report.status, report.env_error = "env_error", cause
    return report


def observed_statuses(spec: TaskSpec, run: InstanceRun) -> StatusMap:
    """The cross-checked status of every test the run reported (canaries left out): what task
    validation and test discovery compare between runs."""
    log_map, junit, _ = _signals(spec, run)
    seen = [t for t in log_map if run.canary is None or run.canary.name_of(t) is None]
    tests = list(dict.fromkeys([*seen, *spec.FAIL_TO_PASS, *spec.PASS_TO_PASS]))
    return _checked(spec, run, tests, log_map, junit)[0]


def grading_log(report: InstanceReport, spec: TaskSpec) -> list[str]:
    """The eval-log lines that say how ``report`` was graded."""
    lines = [f">>>>> grading: {note}" for note in report.notes]
    lines += [f">>>>> tamper: {ev}" for ev in report.tamper]
    if report.env_error:
        lines.append(f">>>>> broken environment: {report.env_error}")
    lines.append(
        f">>>>> {report.status}: FAIL_TO_PASS {len(report.tests_status.FAIL_TO_PASS.success)}/"
        f"{len(spec.FAIL_TO_PASS)}, PASS_TO_PASS {len(report.tests_status.PASS_TO_PASS.success)}/"
        f"{len(spec.PASS_TO_PASS)}"
    )
    return lines
