"""Validate tasks in sandboxes: the tests say what the task says they say.

Each run grades two patches through the one grading path (`harness.evaluate.run_instance`, then the
pure `harness.grading.grade`, with every cross-check, the tamper checks and ``env_error``), each in a
fresh sandbox from the task's instance image, exactly as ``srl evaluate`` would:
1. the empty patch (``run_empty``): the tree is clean at ``base_commit``; with the test patch applied,
   FAIL_TO_PASS tests fail and PASS_TO_PASS tests pass;
2. the gold patch: every listed test passes (the report says ``resolved``).
With ``runs > 1`` every test whose status differs between runs of the same phase is flagged flaky. A
broken environment (the listed tests all missing or ERROR after an import error) is reported with its
first cause.

`discover_tests` is the same procedure without expectations: it returns the tests that go from failing
to passing and those that pass both times (how mined tasks get their FAIL_TO_PASS / PASS_TO_PASS).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import docker
from pydantic import BaseModel, ConfigDict, Field

from envs.spec import TaskSpec
from harness.docker_env import get_client
from harness.evaluate import run_instance
from harness.grading import InstanceRun, grade, observed_statuses
from harness.images import ImageBuildError, default_log_dir, ensure_instance_image
from harness.log_parsers import PASSED, XPASS

GOOD = {PASSED, XPASS}


class PhaseResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phase: str  # "before" (test patch only) or "after" (test patch + gold patch)
    run: int
    exit_code: int | None = None
    status: str = ""  # the grade of this phase's run (harness.grading statuses)
    timed_out: bool = False
    duration: float = 0.0
    statuses: dict[str, str] = Field(default_factory=dict)
    env_error: str | None = None
    tamper: list[str] = Field(default_factory=list)
    log: str | None = None  # host path of the saved test output


class TaskValidation(BaseModel):
    """The outcome for one task; `valid` is True only when every check held in every run."""

    model_config = ConfigDict(extra="forbid")

    instance_id: str
    valid: bool = False
    problems: list[str] = Field(default_factory=list)
    env_error: str | None = Field(None, description="first cause of a broken environment, if any")
    image: str | None = None
    build_seconds: float = 0.0
    test_seconds: float = 0.0
    runs: list[PhaseResult] = Field(default_factory=list)
    flaky: list[str] = Field(default_factory=list)
    fail_to_pass: list[str] = Field(default_factory=list, description="observed (discovery) or expected")
    pass_to_pass: list[str] = Field(default_factory=list)


def _phase(
    spec: TaskSpec, phase: str, number: int, run: InstanceRun, log_dir: Path | None, problems: list[str]
) -> PhaseResult:
    """Grade one run of one phase; its problems (beyond test statuses) go to ``problems``."""
    report = grade(spec, run)
    path = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        p = log_dir / f"run{number}_{phase}.log"
        p.write_text("\n".join(run.log) + "\n" + run.test_output, encoding="utf-8")
        path = str(p)
    what = "the test patch alone" if phase == "before" else "the gold patch"
    if run.error:
        problems.append(f"run {number} with {what} failed: {run.error}")
    if report.status == "env_error":
        problems.append(f"env_error: {report.env_error} (run {number} with {what})")
    if report.status == "tamper":
        problems.append(f"{what} is graded tamper: " + "; ".join(str(e) for e in report.tamper[:3]))
    if run.timed_out:
        problems.append(f"tests timed out with {what} (limit {spec.limits.test_timeout} s)")
    ok = run.prepare_rc == 0 and not run.error
    return PhaseResult(
        phase=phase,
        run=number,
        exit_code=run.exit_code,
        status=report.status,
        timed_out=run.timed_out,
        duration=round(run.test_duration, 3),
        statuses=observed_statuses(spec, run) if ok else {},
        env_error=report.env_error,
        tamper=[str(e) for e in report.tamper],
        log=path,
    )


def _one_run(
    spec: TaskSpec, number: int, client: docker.DockerClient | None, log_dir: Path | None, problems: list[str]
) -> list[PhaseResult]:
    out: list[PhaseResult] = []
    labels = {"kind": "validate", "instance_id": spec.instance_id}
    before = run_instance(spec, None, run_empty=True, client=client, labels=labels)
    head = before.base_head or ""
    if before.started and not before.error and not head.startswith(spec.base_commit):
        problems.append(f"HEAD in the image is {head or 'unknown'}, expected base_commit {spec.base_commit}")
    if before.base_dirty:
        problems.append(f"working tree not clean in the image: {before.base_dirty[:4]}")
    if before.prepare_rc == 11:
        problems.append("test_patch does not apply at base_commit")
        return out
    out.append(_phase(spec, "before", number, before, log_dir, problems))
    if not spec.patch.strip():
        problems.append("no gold patch")
        return out
    after = run_instance(spec, spec.patch, client=client, labels=labels)
    if after.prepare_rc == 10:
        problems.append(f"gold patch does not apply: {after.prepare_log.strip()[-400:]}")
        return out
    out.append(_phase(spec, "after", number, after, log_dir, problems))
    return out


def _flaky(results: list[PhaseResult]) -> list[str]:
    flaky: set[str] = set()
    for phase in ("before", "after"):
        runs = [r.statuses for r in results if r.phase == phase]
        if len(runs) < 2:
            continue
        names = set().union(*runs)
        for name in names:
            if len({(s.get(name) in GOOD) for s in runs}) > 1:
                flaky.add(name)
    return sorted(flaky)


def _time_dependent(name: str) -> bool:
    """Test ids that embed today's date (parametrized with `now()`) change from day to day."""
    today = time.localtime()
    stamps = {
        time.strftime(f, today)
        for f in ("%Y-%m-%d", "%m-%d-%Y", "%d-%m-%Y", "%Y/%m/%d", "%m/%d/%Y", "%d/%m/%Y")
    }
    return any(s in name for s in stamps)


def _phase_statuses(results: list[PhaseResult], phase: str) -> list[dict[str, str]]:
    return [r.statuses for r in results if r.phase == phase]


def _check(spec: TaskSpec, results: list[PhaseResult], problems: list[str]) -> None:
    befores = _phase_statuses(results, "before")
    afters = _phase_statuses(results, "after")
    for r in results:
        if not r.statuses:
            problems.append(
                f"no test results parsed ({spec.log_parser}) in run {r.run} {r.phase}: see {r.log}"
            )
    if not spec.FAIL_TO_PASS:
        problems.append("no FAIL_TO_PASS tests")
    for st in befores:
        passing = [t for t in spec.FAIL_TO_PASS if st.get(t) in GOOD]
        if passing:
            problems.append(f"FAIL_TO_PASS already passes at base (invalid task): {passing[:5]}")
        failing = [t for t in spec.PASS_TO_PASS if st.get(t) not in GOOD]
        if failing:
            problems.append(f"PASS_TO_PASS fails at base: {_describe(failing, st)}")
    for st in afters:
        failing = [t for t in spec.FAIL_TO_PASS if st.get(t) not in GOOD]
        if failing:
            problems.append(f"FAIL_TO_PASS fails with the gold patch: {_describe(failing, st)}")
        failing = [t for t in spec.PASS_TO_PASS if st.get(t) not in GOOD]
        if failing:
            problems.append(f"PASS_TO_PASS fails with the gold patch: {_describe(failing, st)}")


def _describe(tests: list[str], statuses: dict[str, str]) -> str:
    shown = ", ".join(f"{t} ({statuses.get(t, 'missing')})" for t in tests[:5])
    return shown + (f" and {len(tests) - 5} more" if len(tests) > 5 else "")


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def run_task(
    spec: TaskSpec,
    runs: int = 1,
    client: docker.DockerClient | None = None,
    rebuild: bool = False,
    log_dir: Path | None = None,
    discover: bool = False,
    log: Callable[[str], None] | None = None,
) -> TaskValidation:
    """Build (if needed) and run `spec` `runs` times; check it (or, with `discover`, derive its tests)."""
    out = TaskValidation(instance_id=spec.instance_id)
    log_dir = log_dir or default_log_dir(spec)
    t0 = time.monotonic()
    try:
        out.image = ensure_instance_image(spec, client=client, rebuild=rebuild, log_dir=log_dir, log=log)
    except ImageBuildError as exc:
        out.problems.append(f"image build failed: {exc}".splitlines()[0] + f" (see {log_dir})")
        out.build_seconds = time.monotonic() - t0
        return out
    out.build_seconds = time.monotonic() - t0
    problems: list[str] = []
    results: list[PhaseResult] = []
    t1 = time.monotonic()
    for run in range(1, runs + 1):
        results += _one_run(spec, run, client, log_dir / "validate", problems)
    out.test_seconds = time.monotonic() - t1
    out.runs = results
    out.flaky = _flaky(results)
    if discover:
        befores = _phase_statuses(results, "before")
        afters = _phase_statuses(results, "after")
        if befores and afters and len(befores) == len(afters):
            names = sorted(
                n for n in set().union(*befores, *afters) - set(out.flaky) if not _time_dependent(n)
            )
            out.fail_to_pass = [
                n
                for n in names
                if all(b.get(n) not in GOOD for b in befores) and all(a.get(n) in GOOD for a in afters)
            ]
            out.pass_to_pass = [
                n
                for n in names
                if all(b.get(n) in GOOD for b in befores) and all(a.get(n) in GOOD for a in afters)
            ]
        if not out.fail_to_pass:
            problems.append("no test fails before the gold patch and passes after it")
    else:
        out.fail_to_pass = list(spec.FAIL_TO_PASS)
        out.pass_to_pass = list(spec.PASS_TO_PASS)
        _check(spec, results, problems)
        named_flaky = sorted(set(out.flaky) & set(spec.FAIL_TO_PASS + spec.PASS_TO_PASS))
        if named_flaky:
            problems.append(f"flaky tests across {runs} runs: {named_flaky[:5]}")
    out.problems = _dedupe(problems)
    out.env_error = next((r.env_error for r in results if r.env_error), None)
    out.valid = not out.problems
    return out


def validate_tasks(
    specs: Iterable[TaskSpec],
    runs: int = 1,
    max_workers: int = 1,
    client: docker.DockerClient | None = None,
    rebuild: bool = False,
    log_root: Path | None = None,
    on_done: Callable[[TaskValidation], None] | None = None,
    log: Callable[[str], None] | None = None,
    report: Path | None = None,
) -> list[TaskValidation]:
    """Validate many tasks with up to `max_workers` at a time; results in input order.

    Without a `client` one is opened first (`DockerUnavailable` is raised then, not reported per task).
    With `report`, the JSON report (`write_report`) is written there. `srl task validate` is this call.
    """
    specs = list(specs)
    client = client if client is not None else get_client()
    results: dict[str, TaskValidation] = {}

    def work(spec: TaskSpec) -> TaskValidation:
        ld = (log_root / spec.instance_id) if log_root else None
        try:
            return run_task(spec, runs=runs, client=client, rebuild=rebuild, log_dir=ld, log=log)
        except Exception as exc:  # one broken task must not stop the others
            return TaskValidation(instance_id=spec.instance_id, problems=[f"{type(exc).__name__}: {exc}"])

    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        futures = {pool.submit(work, s): s.instance_id for s in specs}
        for fut in as_completed(futures):
            res = fut.result()
            results[futures[fut]] = res
            if on_done:
                on_done(res)
    ordered = [results[s.instance_id] for s in specs]
    if report is not None:
        write_report(ordered, report)
    return ordered


def default_report_path() -> Path:
    """``runs/validate/<local time>.json``: where `srl task validate` writes its report by default."""
    return Path("runs/validate") / f"{time.strftime('%Y%m%d-%H%M%S')}.json"


def write_report(results: list[TaskValidation], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "total": len(results),
        "valid": sum(r.valid for r in results),
        "tasks": [r.model_dump(mode="json") for r in results],
    }
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path
