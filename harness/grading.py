"""Grading: parsed test statuses -> FAIL_TO_PASS / PASS_TO_PASS outcome -> resolved. Pure functions.

Semantics follow SWE-bench: a FAIL_TO_PASS test succeeds when it passed (PASSED, XFAIL, XPASS); a
PASS_TO_PASS test also succeeds when skipped; a test that is missing from the results fails. Resolved
means every FAIL_TO_PASS and every PASS_TO_PASS test succeeded.

Grading does not trust the log alone (a patch can print ``PASSED ...`` lines itself):
:func:`cross_check` combines the log with the test command's exit code and, for pytest, with a JUnit
XML file written to a per-run random path outside the repository and read back by the harness. That
check, :class:`InstanceRun` and the canary evidence live in `harness.cross_check` (re-exported here).

:func:`grade` is the one grader: `harness.evaluate.run_instance` runs an instance and returns an
:class:`InstanceRun` (plain data: what happened); ``grade(spec, run)`` turns it into an
`InstanceReport`, adding the tamper evidence (`harness.tamper`: the diff scan, the audit log, the
canary tests), broken environments (``env_error``) and SWE-bench's cut test ids.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.audit_hook import audit_findings
from harness.cross_check import (
    FAILING,
    PASSING,
    InstanceRun,
    canary_evidence,
    checked_statuses,
    cross_check,
    match_listed,
    run_record,
    run_signals,
)
from harness.log_parsers import ERROR, SKIPPED, StatusMap
from harness.tamper import Evidence, scan_patch

if TYPE_CHECKING:
    from envs.spec import TaskSpec

__all__ = [  # the checks of `harness.cross_check` are part of grading's public names
    "EVAL_TYPES",
    "PASSING",
    "STATUS_ORDER",
    "EvalType",
    "InstanceReport",
    "InstanceRun",
    "Status",
    "SuccessFailure",
    "TestsStatus",
    "cross_check",
    "env_error_cause",
    "eval_type_of",
    "f2p_passed",
    "final_status",
    "grade",
    "grade_tests",
    "grading_log",
    "is_resolved",
    "match_listed",
    "not_failed",
    "observed_statuses",
    "p2p_maintained",
]

#: SWE-bench's eval types (a row's ``eval_type`` column; absent means ``pass_and_fail``).
EvalType = Literal["pass_and_fail", "fail_only"]
EVAL_TYPES: tuple[str, ...] = ("pass_and_fail", "fail_only")

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
    return status_map.get(test) not in FAILING


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


_CAUSE_RE = re.compile(r"^(?:E\s+)?((?:ModuleNotFoundError|ImportError): \S.*)$", re.M)
_NAMED_RE = re.compile(r"No module named '([^']+)'|cannot import name '([^']+)'")


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
    log_map, junit, notes = run_signals(spec, run)
    confirmed, check_notes = checked_statuses(spec, run, tests, log_map, junit)
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
    record, forged = run_record(spec, run)
    evidence += forged
    if spec.log_parser == "pytest":
        evidence += canary_evidence(run, log_map, junit or {}, "JUnit file")
    else:
        evidence += canary_evidence(run, log_map, record, "result record")
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
    log_map, junit, _ = run_signals(spec, run)
    seen = [t for t in log_map if run.canary is None or run.canary.name_of(t) is None]
    tests = list(dict.fromkeys([*seen, *spec.FAIL_TO_PASS, *spec.PASS_TO_PASS]))
    return checked_statuses(spec, run, tests, log_map, junit)[0]


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
