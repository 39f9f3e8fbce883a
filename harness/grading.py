"""Grading: parsed test statuses -> FAIL_TO_PASS / PASS_TO_PASS outcome -> resolved. Pure functions.

Semantics follow SWE-bench: a FAIL_TO_PASS test succeeds when it passed (PASSED, XFAIL, XPASS); a
PASS_TO_PASS test also succeeds when skipped; a test that is missing from the results fails. Resolved
means every FAIL_TO_PASS and every PASS_TO_PASS test succeeded.

Grading does not trust the log alone (a patch can print ``PASSED ...`` lines itself):
:func:`cross_check` combines the log with the test command's exit code and, for pytest, with a JUnit
XML file written to a per-run random path outside the repository and read back by the harness.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.log_parsers import (
    ERROR,
    FAILED,
    PASSED,
    SKIPPED,
    XFAIL,
    XPASS,
    StatusMap,
    mangle_pytest_nodeid,
)

PASSING = frozenset({PASSED, XFAIL, XPASS})
_BAD = frozenset({FAILED, ERROR})
_SEVERITY = {PASSED: 0, XPASS: 0, XFAIL: 0, SKIPPED: 1, FAILED: 2, ERROR: 3}

Status = Literal["resolved", "unresolved", "empty_patch", "patch_failed", "timeout", "error"]
STATUS_ORDER: tuple[str, ...] = ("resolved", "unresolved", "empty_patch", "patch_failed", "timeout", "error")


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


def grade_tests(status_map: StatusMap, fail_to_pass: list[str], pass_to_pass: list[str]) -> TestsStatus:
    result = TestsStatus()
    for test in fail_to_pass:
        (result.FAIL_TO_PASS.success if f2p_passed(test, status_map) else result.FAIL_TO_PASS.failure).append(
            test
        )
    for test in pass_to_pass:
        bucket = (
            result.PASS_TO_PASS.success if p2p_maintained(test, status_map) else result.PASS_TO_PASS.failure
        )
        bucket.append(test)
    return result


def is_resolved(tests_status: TestsStatus) -> bool:
    return not tests_status.FAIL_TO_PASS.failure and not tests_status.PASS_TO_PASS.failure


def cross_check(
    log_map: StatusMap,
    tests: list[str],
    *,
    exit_code: int | None,
    junit: dict[tuple[str, str], str] | None = None,
    require_junit: bool = False,
) -> tuple[StatusMap, list[str]]:
    """The statuses of ``tests`` that every signal agrees on, and notes on each disagreement.

    - ``exit_code`` None (no exit status recorded) or non-zero while the log reports no failure at all:
      the log does not describe the run that happened, every test is reported ERROR.
    - ``require_junit`` (pytest): with no JUnit file every test is ERROR; otherwise each test takes the
      worse of its log and JUnit statuses, and a test absent from the JUnit file is absent (failed).
      A test the ``-rA`` summary cannot name (skipped) takes its JUnit status when that is SKIPPED.
    """
    notes: list[str] = []
    untrusted = {test: ERROR for test in tests}
    if exit_code is None:
        return untrusted, ["no exit status was recorded for the test command: results not trusted"]
    if exit_code != 0 and log_map and not any(s in _BAD for s in log_map.values()):
        return untrusted, [
            f"the test command exited {exit_code} but its log reports no failure: results not trusted"
        ]
    if not require_junit:
        return {t: log_map[t] for t in tests if t in log_map}, notes
    if junit is None:
        return untrusted, ["the JUnit result file was not written: results not trusted"]
    if exit_code != 0 and not any(s in _BAD for s in junit.values()):
        return untrusted, [
            f"the test command exited {exit_code} but the JUnit file reports no failure: results not trusted"
        ]
    confirmed: StatusMap = {}
    for test in tests:
        from_log = log_map.get(test)
        from_junit = junit.get(mangle_pytest_nodeid(test))
        if from_log is None:
            if from_junit == SKIPPED:
                confirmed[test] = SKIPPED
            continue
        if from_junit is None:
            notes.append(f"{test}: log says {from_log}, absent from the JUnit file")
            continue
        if (from_log in PASSING) != (from_junit in PASSING):
            notes.append(f"{test}: log says {from_log}, JUnit file says {from_junit}")
        confirmed[test] = from_log if _SEVERITY[from_log] >= _SEVERITY[from_junit] else from_junit
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
