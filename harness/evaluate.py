"""Patch evaluation, the public face: apply a candidate patch in a task's sandbox, run its tests,
grade, report.

- `harness.prepare`: what runs before the tests (apply with fallbacks, reset test and compiled files,
  the test patch, canaries, the audit hook) and the test command; bash text, no Docker.
- `harness.instance`: :func:`run_instance` (one task, one patch -> `harness.grading.InstanceRun`) and,
  with the pure `harness.grading.grade`, :func:`evaluate_instance`; an outcome's files.
- `harness.batch`: :func:`evaluate_predictions` (planning, a local pool or Ray tasks, resume, summaries).

Everything callers import from here stays importable from here.
"""

from __future__ import annotations

from harness.batch import (
    SUMMARY,
    EvaluateConfig,
    EvaluationInputError,
    Job,
    RunResult,
    evaluate_predictions,
    plan,
    remove_stale_sandboxes,
    summarize,
)
from harness.instance import (
    EVAL_LOG,
    PATCH_FILE,
    REPORT,
    TEST_OUTPUT,
    InstanceOutcome,
    atomic_write,
    evaluate_instance,
    outcome_of,
    read_report,
    run_instance,
    write_outcome,
)
from harness.prepare import (
    APPLY_METHODS,
    TESTBED,
    build_test_command,
    install_audit_hook,
    normalize_patch,
    paths_to_reset,
    prepare_script,
    touched_paths,
)

__all__ = [
    "APPLY_METHODS",
    "EVAL_LOG",
    "PATCH_FILE",
    "REPORT",
    "SUMMARY",
    "TESTBED",
    "TEST_OUTPUT",
    "EvaluateConfig",
    "EvaluationInputError",
    "InstanceOutcome",
    "Job",
    "RunResult",
    "atomic_write",
    "build_test_command",
    "evaluate_instance",
    "evaluate_predictions",
    "install_audit_hook",
    "normalize_patch",
    "outcome_of",
    "paths_to_reset",
    "plan",
    "prepare_script",
    "read_report",
    "remove_stale_sandboxes",
    "run_instance",
    "summarize",
    "touched_paths",
    "write_outcome",
]
