"""Edges of `harness.grading` that surviving mutants showed untested (docs/development.md, "Mutation
testing"): the early exits of `grade`, the JUnit-parser path, the result-record lookup of unittest ids,
the defaults of `cross_check`, and `env_error_cause`. Plain data in, report out; no Docker."""

from __future__ import annotations

from envs.spec import TaskSpec
from harness.grading import InstanceRun, cross_check, env_error_cause, grade
from harness.log_parsers import ERROR, FAILED, PASSED

PATCH = "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"


def _spec(log_parser: str = "pytest", f2p=("t.py::test_a",), p2p=("t.py::test_b",)) -> TaskSpec:
    return TaskSpec(
        instance_id="x__y-1",
        repo="x/y",
        base_commit="0" * 40,
        patch=PATCH,
        FAIL_TO_PASS=list(f2p),
        PASS_TO_PASS=list(p2p),
        log_parser=log_parser,
    )


def _run(**kw) -> InstanceRun:
    base = dict(instance_id="x__y-1", model="m", patch=PATCH, prepare_rc=0, apply_method="git apply")
    return InstanceRun(**{**base, **kw})


def test_no_patch_and_an_empty_patch_are_empty_patch_and_only_none_is_patch_is_none():
    none = grade(_spec(), _run(patch=None))
    assert (none.status, none.patch_is_None, none.patch_exists) == ("empty_patch", True, False)
    blank = grade(_spec(), _run(patch="  \n"))
    assert (blank.status, blank.patch_is_None, blank.patch_exists) == ("empty_patch", False, False)
    assert blank.error is None and not blank.patch_successfully_applied


def test_preparation_outcomes():
    failed = grade(_spec(), _run(prepare_rc=10))
    assert failed.status == "patch_failed" and not failed.patch_successfully_applied and failed.error is None
    test_patch = grade(_spec(), _run(prepare_rc=11))
    assert test_patch.status == "error" and test_patch.patch_successfully_applied
    assert test_patch.error == "the task's test patch does not apply on top of the candidate patch"
    broke = grade(_spec(), _run(prepare_rc=3))
    assert broke.status == "error" and broke.error == "preparing the repository failed (exit 3)"
    crashed = grade(_spec(), _run(error="the sandbox could not start", prepare_rc=None))
    assert crashed.status == "error" and crashed.error == "the sandbox could not start"


def _junit(*cases: str) -> bytes:
    return ("<testsuites><testsuite>" + "".join(cases) + "</testsuite></testsuites>").encode()


def test_a_junit_task_is_graded_from_its_junit_file():
    spec = _spec("junit", f2p=("pkg.T::test_a",), p2p=("pkg.T::test_b",))
    ok = _junit('<testcase classname="pkg.T" name="test_a"/>', '<testcase classname="pkg.T" name="test_b"/>')
    report = grade(spec, _run(junit=ok, exit_code=0, test_output="not the results"))
    assert report.test_statuses == {"pkg.T::test_a": PASSED, "pkg.T::test_b": PASSED}
    assert report.status == "resolved"
    bad = _junit(
        '<testcase classname="pkg.T" name="test_a"><failure message="f"/></testcase>',
        '<testcase classname="pkg.T" name="test_b"/>',
    )
    report = grade(spec, _run(junit=bad, exit_code=1))
    assert report.test_statuses["pkg.T::test_a"] == FAILED and report.status == "unresolved"
    missing = grade(spec, _run(junit=None, exit_code=0))
    assert missing.test_statuses == {"pkg.T::test_a": "MISSING", "pkg.T::test_b": "MISSING"}


def test_a_pytest_task_needs_its_junit_file():
    log = "PASSED t.py::test_a\nPASSED t.py::test_b\n"
    junit = _junit('<testcase classname="t" name="test_a"/>', '<testcase classname="t" name="test_b"/>')
    assert grade(_spec(), _run(test_output=log, junit=junit, exit_code=0)).status == "resolved"
    without = grade(_spec(), _run(test_output=log, junit=None, exit_code=0))
    assert without.status == "unresolved"
    assert without.test_statuses == {"t.py::test_a": ERROR, "t.py::test_b": ERROR}


def test_cross_check_defaults_trust_the_log_alone():
    log = {"a": PASSED, "b": FAILED}
    assert cross_check(log, ["a", "b", "c"], exit_code=1) == ({"a": PASSED, "b": FAILED}, [])
    statuses, notes = cross_check(log, ["a"], exit_code=None)
    assert statuses == {"a": ERROR} and "no exit status" in notes[0]


def test_cross_check_looks_record_ids_up_through_record_key():
    log = {"test_x (pkg.T.test_x)": PASSED}
    record = {"test_x (pkg.T)": PASSED}
    strip = lambda t: t.replace(".test_x)", ")")  # noqa: E731
    same, _ = cross_check(log, list(log), exit_code=0, record=record, require_record=True, record_key=strip)
    assert same == {"test_x (pkg.T.test_x)": PASSED}
    absent, notes = cross_check(log, list(log), exit_code=0, record=record, require_record=True)
    assert absent == {} and "absent from the result record" in notes[0]


def test_env_error_cause_skips_imports_the_patch_touches():
    out = "E   ModuleNotFoundError: No module named 'yaml'\n"
    assert env_error_cause(out, PATCH) == "ModuleNotFoundError: No module named 'yaml'"
    touching = PATCH + "+import yaml\n"
    assert env_error_cause(out, touching) is None
    header_only = "--- a/yaml.py\n+++ b/yaml.py\n"
    assert env_error_cause(out, header_only) == "ModuleNotFoundError: No module named 'yaml'"
    assert env_error_cause("all fine\n", PATCH) is None


def test_a_django_log_id_is_found_in_the_record_under_its_classic_form():
    """Django prints ``test_x (pkg.T.test_x)`` on Python >= 3.11; the record may hold ``test_x (pkg.T)``."""
    spec = _spec("django", f2p=("test_x (pkg.T.test_x)",), p2p=())
    log = "test_x (pkg.T.test_x) ... ok\n"
    report = grade(spec, _run(test_output=log, exit_code=0, record="PASSED\ttest_x (pkg.T)\n"))
    assert report.test_statuses == {"test_x (pkg.T.test_x)": PASSED}
    assert report.status == "resolved"
    fail_log = "test_x (pkg.T.test_x) ... FAIL\n"
    failed = grade(spec, _run(test_output=fail_log, exit_code=1, record="FAILED\ttest_x (pkg.T)\n"))
    assert failed.test_statuses == {"test_x (pkg.T.test_x)": FAILED} and failed.status == "unresolved"


def test_timeouts():
    log = "PASSED t.py::test_a\nPASSED t.py::test_b\n"
    junit = _junit('<testcase classname="t" name="test_a"/>', '<testcase classname="t" name="test_b"/>')
    report = grade(_spec(), _run(test_output=log, junit=junit, exit_code=0, timed_out=True))
    assert (report.status, report.timed_out, report.test_exit_code, report.resolved) == (
        "timeout",
        True,
        None,
        False,
    )
    done = grade(_spec(), _run(test_output=log, junit=junit, exit_code=0))
    assert (done.status, done.timed_out, done.test_exit_code, done.resolved) == ("resolved", False, 0, True)
    prep = grade(_spec(), _run(prepare_rc=None, timed_out=True))
    assert prep.error == "preparing the repository failed (timed out)"
    prep = grade(_spec(), _run(prepare_rc=None, exit_code=7))
    assert prep.error == "preparing the repository failed (exit 7)"
