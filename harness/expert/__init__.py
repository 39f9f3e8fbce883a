"""A scripted expert that solves a task from its gold patch, in a sandbox, and records what it saw.

    run = generate_run(spec, style="tools", seed=3)
    run.trajectory          # our `Trajectory`: thoughts, tool calls, the real observations
    run.resolved            # the grader's verdict on the submitted patch

The expert is an oracle (it knows the gold patch) that acts like an engineer: it looks around the
repository (a listing, `grep` for names taken from the failing tests and from the gold hunks), reads the
failing test and the code around every hunk, edits (``str_replace_editor`` with the gold hunks as
``old_str -> new_str``, new files with ``create``; or, with ``style="bash"``, Python heredoc edits
through ``bash``), runs the failing tests and submits. A seed varies the exploration (order, commands,
view windows, how much context an edit carries) and adds an occasional wrong turn with its correction (a
look at the wrong file, a test run before the fix that fails, an edit whose ``old_str`` does not match),
so step-wise data made from many runs is not one template. Every thought says what the previous
observation showed (read from the real output) and why the next action follows.

Planning (`plan_run`, `gold_edits`) and writing thoughts (`write_thought`) are pure functions of plain
data; `generate_run` gathers the facts in the sandbox, executes the plan, grades the submitted patch
with the evaluation harness and (optionally) replays the trajectory to check that it reproduces the diff.

The package: `gold` (the gold patch as edits, failing tests, names), `plan` (the seeded actions),
`thoughts` (what each observation showed and why the next action follows), `run` (sandbox, grading,
replay, many runs). Everything public is importable from `harness.expert`.
"""

from harness.expert.gold import (
    GENERATOR,
    STYLES,
    TOOLSET,
    Edit,
    ExpertError,
    FailingTest,
    Style,
    apply_edits,
    failing_tests,
    gold_edits,
    gold_identifiers,
    patched_files,
)
from harness.expert.plan import (
    PlanStep,
    RepoFacts,
    bash_create_command,
    bash_replace_command,
    plan_run,
)
from harness.expert.run import (
    ExpertRun,
    GenerateSummary,
    ensure_expert_runs,
    execute_plan,
    gather_facts,
    generate_run,
    generate_runs,
    plan_jobs,
    run_id,
    run_path,
)
from harness.expert.thoughts import (
    describe,
    grep_hits,
    motivate,
    pytest_summary,
    write_thought,
)

__all__ = [
    "Edit",
    "ExpertError",
    "ExpertRun",
    "FailingTest",
    "GENERATOR",
    "GenerateSummary",
    "PlanStep",
    "RepoFacts",
    "STYLES",
    "Style",
    "TOOLSET",
    "apply_edits",
    "bash_create_command",
    "bash_replace_command",
    "describe",
    "ensure_expert_runs",
    "execute_plan",
    "failing_tests",
    "gather_facts",
    "generate_run",
    "generate_runs",
    "gold_edits",
    "gold_identifiers",
    "grep_hits",
    "motivate",
    "patched_files",
    "plan_jobs",
    "plan_run",
    "pytest_summary",
    "run_id",
    "run_path",
    "write_thought",
]
