"""Task validation in sandboxes (docker tier) and its pure checks (unit tier)."""

from __future__ import annotations

import json

import pytest

from envs.sources import load_tasks
from harness.validate import (
    PhaseResult,
    _check,
    _flaky,
    run_task,
    validate_tasks,
)

TASK = "cachetools-5.5.2"  # release-mined from the package index: 5.5.1 -> 5.5.2


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
    # graded through the one path (cross-checks, canaries, audit hook): unresolved, then resolved
    assert before.status == "unresolved" and after.status == "resolved"
    assert not before.tamper and not after.tamper and res.env_error is None
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
    from unidiff import PatchSet

    broken = spec.patch.replace('-__version__ = "5.5.1"', '-__version__ = "5.5.0"')
    assert broken != spec.patch
    res = run_task(spec.model_copy(update={"patch": broken}), client=docker_client, log_dir=tmp_path)
    assert not res.valid and any("gold patch does not apply" in p for p in res.problems), res.problems
    # a gold patch that applies but does not fix the bug: only its version bump
    first = PatchSet(spec.patch)[0]
    noop = str(first).split("\n@@ ")[0] + "\n" + str(first[0])
    assert '+__version__ = "5.5.2"' in noop and "_cached_wrapper" not in noop
    res = run_task(spec.model_copy(update={"patch": noop}), client=docker_client, log_dir=tmp_path)
    assert any("FAIL_TO_PASS fails with the gold patch" in p for p in res.problems), res.problems


@pytest.mark.docker
def test_missing_commit_is_a_problem_not_a_crash(spec, docker_client, base_image, tmp_path):
    bad = spec.model_copy(update={"base_commit": "f" * 40, "instance_id": "missing-commit"})
    (res,) = validate_tasks([bad], client=docker_client, log_root=tmp_path, report=tmp_path / "r.json")
    assert not res.valid and "not found in repo" in res.problems[0]
    report = json.loads((tmp_path / "r.json").read_text())  # written by validate_tasks itself
    assert (
        report["total"] == 1
        and report["valid"] == 0
        and report["tasks"][0]["instance_id"] == "missing-commit"
    )


@pytest.mark.docker
def test_broken_environment_is_named_with_its_cause(docker_client, base_image, tmp_path):
    """Issue 14: a task whose environment lacks a package its tests import is ``env_error`` with the
    first cause (here: a bundled task with its extra test packages withheld), never just invalid."""
    tasks = [
        t for t in load_tasks().tasks if t.log_parser == "pytest" and set(t.env.pip_packages) - {"pytest"}
    ]
    if tasks:
        spec = tasks[0]
        withheld = sorted(set(spec.env.pip_packages) - {"pytest"})
        broken = spec.model_copy(
            update={
                "env": spec.env.model_copy(update={"pip_packages": ["pytest"]}),
                "instance_id": "withheld-deps",
            }
        )
    else:  # no bundled task needs more than pytest: its tests import a module no environment has
        spec = load_tasks().get(TASK)
        withheld = ["srl_withheld_dependency"]
        target = spec.tests_to_run()[0]
        extra = (
            f"diff --git a/{target} b/{target}\n--- a/{target}\n+++ b/{target}\n@@ -1,0 +1,1 @@\n"
            "+import srl_withheld_dependency  # noqa\n"
        )
        broken = spec.model_copy(
            update={"test_patch": spec.test_patch + extra, "instance_id": "withheld-deps"}
        )
    res = run_task(broken, client=docker_client, log_dir=tmp_path)
    assert not res.valid and res.env_error is not None, res.problems
    assert res.env_error.startswith("ModuleNotFoundError: No module named"), res.env_error
    assert any(name.lower().replace("-", "_") in res.env_error.lower() for name in withheld), res.env_error
    assert any(p.startswith("env_error: ModuleNotFoundError") for p in res.problems), res.problems
    assert {r.status for r in res.runs} == {"env_error"}
