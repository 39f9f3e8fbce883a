"""Task validation in sandboxes (docker tier) and its pure checks (unit tier)."""

from __future__ import annotations

import json

import pytest

from envs.sources import load_tasks
from harness.validate import (
    PhaseResult,
    _check,
    _flaky,
    extract_test_output,
    run_task,
    validate_tasks,
    write_report,
)

TASK = "tkem__cachetools-387"


# ------------------------------------------------------------------------------------ unit


def _phase(phase: str, run: int, **statuses: str) -> PhaseResult:
    return PhaseResult(phase=phase, run=run, exit_code=0, statuses=statuses)


def test_flaky_tests_are_those_whose_status_changes_between_runs():
    runs = [_phase("before", 1, a="PASSED", b="FAILED"), _phase("before", 2, a="PASSED", b="PASSED")]
    assert _flaky(runs) == ["b"]
    assert _flaky(runs[:1]) == []


def test_check_reports_each_broken_expectation():
    spec = load_tasks().get(TASK).model_copy(update={"FAIL_TO_PASS": ["f"], "PASS_TO_PASS": ["p"]})
    problems: list[str] = []
    _check(spec, [_phase("before", 1, f="PASSED", p="FAILED"), _phase("after", 1, f="FAILED")], problems)
    text = "\n".join(problems)
    assert "FAIL_TO_PASS already passes at base" in text
    assert "PASS_TO_PASS fails at base: p (FAILED)" in text
    assert "FAIL_TO_PASS fails with the gold patch: f (FAILED)" in text
    assert "PASS_TO_PASS fails with the gold patch: p (missing)" in text


def test_test_output_is_cut_at_the_markers():
    log = "noise\n>>>>> Start Test Output\nPASSED t::a\n>>>>> End Test Output (exit 0)\nrestore noise"
    assert extract_test_output(log).strip() == "PASSED t::a"


# ------------------------------------------------------------------------------------ docker


@pytest.fixture(scope="module")
def spec():
    return load_tasks().get(TASK)


@pytest.mark.docker
def test_good_task_is_valid_and_stable_over_runs(spec, docker_client, base_image, tmp_path):
    res = run_task(spec, runs=2, client=docker_client, log_dir=tmp_path)
    assert res.valid, res.problems
    assert res.flaky == []
    assert [r.phase for r in res.runs] == ["before", "after", "before", "after"]
    before, after = res.runs[0], res.runs[1]
    assert (
        before.statuses[spec.FAIL_TO_PASS[0]] == "FAILED" and after.statuses[spec.FAIL_TO_PASS[0]] == "PASSED"
    )
    assert before.exit_code != 0 and after.exit_code == 0
    assert (tmp_path / "validate" / "run1_before.log").exists()


@pytest.mark.docker
def test_fail_to_pass_that_already_passes_makes_the_task_invalid(spec, docker_client, base_image, tmp_path):
    moved = spec.PASS_TO_PASS[0]
    bad = spec.model_copy(
        update={"FAIL_TO_PASS": [*spec.FAIL_TO_PASS, moved], "PASS_TO_PASS": spec.PASS_TO_PASS[1:]}
    )
    res = run_task(bad, client=docker_client, log_dir=tmp_path)
    assert not res.valid
    assert any("FAIL_TO_PASS already passes at base" in p and moved in p for p in res.problems), res.problems


@pytest.mark.docker
def test_broken_gold_patch_is_reported(spec, docker_client, base_image, tmp_path):
    broken = spec.patch.replace("if self.__attrname is not None:", "if self.__attrname is maybe None:")
    assert broken != spec.patch
    res = run_task(spec.model_copy(update={"patch": broken}), client=docker_client, log_dir=tmp_path)
    assert not res.valid and any("gold patch does not apply" in p for p in res.problems), res.problems
    # a gold patch that applies but does not fix the bug
    noop = spec.patch.replace("+        if obj is None:", "+        if obj is None and False:")
    res = run_task(spec.model_copy(update={"patch": noop}), client=docker_client, log_dir=tmp_path)
    assert any("FAIL_TO_PASS fails with the gold patch" in p for p in res.problems), res.problems


@pytest.mark.docker
def test_missing_commit_is_a_problem_not_a_crash(spec, docker_client, base_image, tmp_path):
    bad = spec.model_copy(update={"base_commit": "f" * 40, "instance_id": "missing-commit"})
    good_and_bad = validate_tasks([bad], client=docker_client, log_root=tmp_path)
    (res,) = good_and_bad
    assert not res.valid and "not found in repo" in res.problems[0]
    report = json.loads(write_report(good_and_bad, tmp_path / "r.json").read_text())
    assert (
        report["total"] == 1
        and report["valid"] == 0
        and report["tasks"][0]["instance_id"] == "missing-commit"
    )
