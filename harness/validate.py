"""Validate tasks in sandboxes: the tests say what the task says they say.

For each run (a fresh sandbox from the task's instance image):
1. the tree is clean at ``base_commit``;
2. with the test patch applied, FAIL_TO_PASS tests fail and PASS_TO_PASS tests pass;
3. with the gold patch applied too, all of them pass.
With ``runs > 1`` every test whose status differs between runs of the same phase is flagged flaky.

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

from envs.spec import TEST_OUTPUT_END, TEST_OUTPUT_START, TESTBED, TaskSpec
from harness.images import ImageBuildError, default_log_dir, ensure_instance_image
from harness.log_parsers import PASSED, XPASS, get_parser
from harness.sandbox import Sandbox, SandboxConfig, SandboxError

GOOD = {PASSED, XPASS}


class PhaseResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phase: str  # "before" (test patch only) or "after" (test patch + gold patch)
    run: int
    exit_code: int
    timed_out: bool = False
    duration: float = 0.0
    statuses: dict[str, str] = Field(default_factory=dict)
    log: str | None = None  # host path of the saved test output


class TaskValidation(BaseModel):
    """The outcome for one task; `valid` is True only when every check held in every run."""

    model_config = ConfigDict(extra="forbid")

    instance_id: str
    valid: bool = False
    problems: list[str] = Field(default_factory=list)
    image: str | None = None
    build_seconds: float = 0.0
    test_seconds: float = 0.0
    runs: list[PhaseResult] = Field(default_factory=list)
    flaky: list[str] = Field(default_factory=list)
    fail_to_pass: list[str] = Field(default_factory=list, description="observed (discovery) or expected")
    pass_to_pass: list[str] = Field(default_factory=list)


def sandbox_config(spec: TaskSpec, image: str) -> SandboxConfig:
    lim = spec.limits
    return SandboxConfig(
        image=image,
        cpus=lim.cpus,
        memory=lim.memory,
        pids_limit=lim.pids,
        timeout=lim.test_timeout,
        output_limit=2_000_000,
        workdir=TESTBED,
        network=False,
        extra_labels={"kind": "validate", "instance_id": spec.instance_id},
    )


def extract_test_output(log: str) -> str:
    """The part of an eval-script log between the start and end markers (all of it if absent)."""
    start = log.find(TEST_OUTPUT_START)
    end = log.rfind(TEST_OUTPUT_END)
    if start < 0:
        return log
    return log[start + len(TEST_OUTPUT_START) : end if end > start else len(log)]


def _run_eval(sb: Sandbox, spec: TaskSpec, phase: str, run: int, log_dir: Path | None) -> PhaseResult:
    sb.write_file("/tmp/srl_eval.sh", spec.eval_script())
    t0 = time.monotonic()
    res = sb.exec(
        "bash /tmp/srl_eval.sh > /tmp/srl_eval.log 2>&1; echo $?", timeout=spec.limits.test_timeout + 30
    )
    duration = time.monotonic() - t0
    try:
        log = sb.read_file("/tmp/srl_eval.log").decode("utf-8", errors="replace")
    except FileNotFoundError:
        log = res.output
    path = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        p = log_dir / f"run{run}_{phase}.log"
        p.write_text(log, encoding="utf-8")
        path = str(p)
    try:
        code = int(res.output.strip().splitlines()[-1]) if not res.timed_out else -1
    except (ValueError, IndexError):
        code = -1
    statuses = (
        get_parser(spec.log_parser)(extract_test_output(log)) if ">>>>> Test patch failed" not in log else {}
    )
    return PhaseResult(
        phase=phase,
        run=run,
        exit_code=code,
        timed_out=res.timed_out,
        duration=duration,
        statuses=statuses,
        log=path,
    )


def _one_run(
    sb: Sandbox, spec: TaskSpec, run: int, log_dir: Path | None, problems: list[str]
) -> list[PhaseResult]:
    out: list[PhaseResult] = []
    head = sb.exec(f"cd {TESTBED} && git rev-parse HEAD && git status --porcelain", timeout=60)
    lines = head.output.strip().splitlines()
    if not lines or lines[0] != spec.base_commit and not lines[0].startswith(spec.base_commit):
        problems.append(f"HEAD in the image is {lines[:1]}, expected base_commit {spec.base_commit}")
    if len(lines) > 1:
        problems.append(f"working tree not clean in the image: {lines[1:4]}")
    before = _run_eval(sb, spec, "before", run, log_dir)
    out.append(before)
    if before.exit_code == 3 and not before.statuses:
        problems.append("test_patch does not apply at base_commit")
        return out
    if before.timed_out:
        problems.append(f"tests timed out before the gold patch (limit {spec.limits.test_timeout} s)")
    if spec.patch.strip():
        sb.write_file("/tmp/srl_gold.patch", spec.patch)
        applied = sb.exec(f"cd {TESTBED} && git apply -v /tmp/srl_gold.patch", timeout=120)
        if applied.exit_code != 0:
            problems.append(f"gold patch does not apply: {applied.output.strip()[-400:]}")
            return out
    else:
        problems.append("no gold patch")
        return out
    after = _run_eval(sb, spec, "after", run, log_dir)
    if after.timed_out:
        problems.append(f"tests timed out after the gold patch (limit {spec.limits.test_timeout} s)")
    out.append(after)
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
        try:
            with Sandbox(sandbox_config(spec, out.image), client=client) as sb:
                results += _one_run(sb, spec, run, log_dir / "validate", problems)
        except SandboxError as exc:
            problems.append(f"sandbox failed in run {run}: {exc}")
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
) -> list[TaskValidation]:
    """Validate many tasks with up to `max_workers` at a time; results in input order."""
    specs = list(specs)
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
    return [results[s.instance_id] for s in specs]


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
