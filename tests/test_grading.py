"""Grading: FAIL_TO_PASS / PASS_TO_PASS semantics, the cross-check against spoofing, the report shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHARED_FIXTURES

from harness.grading import InstanceReport, TestsStatus, cross_check, grade_tests, is_resolved
from harness.log_parsers import ERROR, FAILED, PASSED, SKIPPED, XFAIL, XPASS, mangle_pytest_nodeid

FIXTURES = SHARED_FIXTURES / "mini-swe-agent"
F2P = ["t.py::test_fixed"]
P2P = ["t.py::test_kept", "t.py::test_other"]


def test_all_pass_resolves() -> None:
    ts = grade_tests(
        {"t.py::test_fixed": PASSED, "t.py::test_kept": PASSED, "t.py::test_other": PASSED}, F2P, P2P
    )
    assert ts.FAIL_TO_PASS.success == F2P and ts.PASS_TO_PASS.success == P2P
    assert is_resolved(ts)


def test_missing_test_counts_as_failed() -> None:
    ts = grade_tests({"t.py::test_kept": PASSED, "t.py::test_other": PASSED}, F2P, P2P)
    assert ts.FAIL_TO_PASS.failure == F2P
    assert not is_resolved(ts)
    ts = grade_tests({"t.py::test_fixed": PASSED, "t.py::test_kept": PASSED}, F2P, P2P)
    assert ts.PASS_TO_PASS.failure == ["t.py::test_other"]
    assert not is_resolved(ts)


@pytest.mark.parametrize(
    ("status", "f2p_ok", "p2p_ok"),
    [
        (PASSED, True, True),
        (XFAIL, True, True),
        (XPASS, True, True),
        (SKIPPED, False, True),
        (FAILED, False, False),
        (ERROR, False, False),
    ],
)
def test_status_semantics(status: str, f2p_ok: bool, p2p_ok: bool) -> None:
    ts = grade_tests({"a": status, "b": status}, ["a"], ["b"])
    assert (ts.FAIL_TO_PASS.success == ["a"]) is f2p_ok
    assert (ts.PASS_TO_PASS.success == ["b"]) is p2p_ok


def _junit(statuses: dict[str, str]) -> dict[tuple[str, str], str]:
    return {mangle_pytest_nodeid(k): v for k, v in statuses.items()}


def test_cross_check_agreeing_signals() -> None:
    log = {"t.py::test_fixed": PASSED, "t.py::test_kept": PASSED}
    confirmed, notes = cross_check(log, F2P + P2P, exit_code=0, junit=_junit(log), require_junit=True)
    assert confirmed == log and notes == []


def test_spoofed_pass_lines_without_junit_are_not_trusted() -> None:
    log = {"t.py::test_fixed": PASSED, "t.py::test_kept": PASSED, "t.py::test_other": PASSED}
    confirmed, notes = cross_check(log, F2P + P2P, exit_code=0, junit=None, require_junit=True)
    assert set(confirmed.values()) == {ERROR}
    assert "JUnit result file was not written" in notes[0]
    assert not is_resolved(grade_tests(confirmed, F2P, P2P))


def test_log_pass_but_junit_fail_is_a_failure() -> None:
    log = {"t.py::test_fixed": PASSED, "t.py::test_kept": PASSED, "t.py::test_other": PASSED}
    junit = _junit({**log, "t.py::test_fixed": FAILED})
    confirmed, notes = cross_check(log, F2P + P2P, exit_code=0, junit=junit, require_junit=True)
    assert confirmed["t.py::test_fixed"] == FAILED
    assert any("JUnit file says FAILED" in n for n in notes)


def test_test_absent_from_junit_is_missing() -> None:
    log = {"t.py::test_fixed": PASSED}
    confirmed, notes = cross_check(log, F2P, exit_code=0, junit={}, require_junit=True)
    assert confirmed == {}
    assert "absent from the JUnit file" in notes[0]


def test_nonzero_exit_with_only_passes_is_not_trusted() -> None:
    """A patch that prints fake PASSED lines and exits 1 (or is killed) does not resolve."""
    log = {"t.py::test_fixed": PASSED, "t.py::test_kept": PASSED, "t.py::test_other": PASSED}
    confirmed, notes = cross_check(log, F2P + P2P, exit_code=1, require_junit=False)
    assert set(confirmed.values()) == {ERROR}
    assert "exited 1" in notes[0]
    confirmed, _ = cross_check(log, F2P + P2P, exit_code=None)
    assert set(confirmed.values()) == {ERROR}


def test_junit_without_failures_but_nonzero_exit_is_not_trusted() -> None:
    """A patch that writes a fake all-pass JUnit file still cannot change the exit status."""
    log = {"t.py::test_fixed": PASSED, "t.py::test_kept": FAILED}
    junit = _junit({"t.py::test_fixed": PASSED, "t.py::test_kept": PASSED})
    confirmed, _ = cross_check(log, F2P + P2P, exit_code=1, junit=junit, require_junit=True)
    assert set(confirmed.values()) == {ERROR}


def test_skipped_known_only_from_junit() -> None:
    confirmed, _ = cross_check(
        {}, ["t.py::test_skip"], exit_code=0, junit=_junit({"t.py::test_skip": SKIPPED}), require_junit=True
    )
    assert confirmed == {"t.py::test_skip": SKIPPED}


def test_cross_check_against_the_result_record_of_other_runners() -> None:
    """unittest / Django / sympy: the record the audit hook kept from the runner's result object plays
    the JUnit file's part (looked up through the runner's id normalization)."""
    from harness.log_parsers import normalize_unittest_id

    tests = ["test_fixed (m.T)", "test_kept (m.T)"]
    log = {"test_fixed (m.T)": PASSED, "test_kept (m.T)": PASSED}
    kw = {"require_record": True, "record_key": normalize_unittest_id}
    confirmed, notes = cross_check(log, tests, exit_code=0, record=dict(log), **kw)
    assert confirmed == log and notes == []
    # printed lines the runner's result object never saw: absent (failed), with a note
    confirmed, notes = cross_check(log, tests, exit_code=0, record={"test_kept (m.T)": PASSED}, **kw)
    assert confirmed == {"test_kept (m.T)": PASSED} and "absent from the result record" in notes[0]
    # the record says FAILED: the worse status wins
    mixed = {**log, "test_kept (m.T)": FAILED}
    confirmed, notes = cross_check(mixed, tests, exit_code=1, record={t: FAILED for t in tests}, **kw)
    assert confirmed["test_fixed (m.T)"] == FAILED and "the result record says FAILED" in notes[0]
    # a non-zero exit whose record shows no failure, or a record that was required and not written
    assert set(cross_check(log, tests, exit_code=1, record=dict(log), **kw)[0].values()) == {ERROR}
    assert set(cross_check(log, tests, exit_code=0, record=None, **kw)[0].values()) == {ERROR}
    # no record required (the hook did not run): the log and the exit status, as before
    assert cross_check(log, tests, exit_code=0)[0] == log


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.report.json")), ids=lambda p: p.name.split(".")[0])
def test_report_shape_reads_swebench_reports(path: Path) -> None:
    """Our TestsStatus reads the SWE-bench harness's reports, and our report.json has their keys."""
    flat = json.loads(path.read_text())
    ts = TestsStatus.model_validate(flat["tests_status"])
    assert is_resolved(ts) is flat["resolved"]
    report = InstanceReport(
        instance_id="x__y-1",
        model_name_or_path="m",
        status="resolved",
        resolved=flat["resolved"],
        patch_successfully_applied=True,
        tests_status=ts,
    )
    body = report.to_swebench()["x__y-1"]
    for key in flat:
        assert body[key] == flat[key]
    assert body["status"] == "resolved"
    assert InstanceReport.from_swebench(report.to_swebench()) == report


def test_fail_only_counts_every_test_not_reported_failed() -> None:
    status_map = {"a": PASSED, "b": FAILED, "c": ERROR, "d": SKIPPED}
    strict = grade_tests(status_map, ["a", "missing"], ["d", "b"])
    assert strict.FAIL_TO_PASS.failure == ["missing"] and strict.PASS_TO_PASS.failure == ["b"]
    loose = grade_tests(status_map, ["a", "missing", "c"], ["d", "b"], "fail_only")
    assert loose.FAIL_TO_PASS.success == ["a", "missing"] and loose.FAIL_TO_PASS.failure == ["c"]
    assert loose.PASS_TO_PASS.success == ["d"] and loose.PASS_TO_PASS.failure == ["b"]
    with pytest.raises(ValueError, match="eval_type 'sometimes'"):
        grade_tests(status_map, ["a"], [], "sometimes")  # type: ignore[arg-type]


def test_fail_only_is_not_honoured_when_the_runner_reported_nothing() -> None:
    from envs.spec import TaskSpec
    from harness.grading import eval_type_of

    spec = TaskSpec(
        instance_id="x__y-1",
        repo="x/y",
        base_commit="0" * 40,
        patch="",
        FAIL_TO_PASS=["t"],
        metadata={"eval_type": "FAIL_ONLY"},
    )
    assert eval_type_of(spec, {"t": PASSED}) == ("fail_only", [])
    kind, notes = eval_type_of(spec, {})
    assert kind == "pass_and_fail" and "reported no test" in notes[0]
    odd = spec.model_copy(update={"metadata": {"eval_type": "sometimes"}})
    assert eval_type_of(odd, {"t": PASSED})[0] == "pass_and_fail"
    plain = spec.model_copy(update={"metadata": {}})
    assert eval_type_of(plain, {}) == ("pass_and_fail", [])
