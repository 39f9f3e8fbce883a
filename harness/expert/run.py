"""Running the expert: gather the repo's facts in a sandbox, execute the plan, grade and replay the
result; many runs over a pool of workers."""

from __future__ import annotations

import random
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from envs.spec import TESTBED
from trajectories.schema import Step, Trajectory

if TYPE_CHECKING:
    import docker

    from envs.spec import TaskSpec
from harness.expert.gold import GENERATOR, STYLES, TOOLSET, Edit, ExpertError, failing_tests
from harness.expert.plan import PlanStep, RepoFacts, plan_run
from harness.expert.thoughts import _short, write_thought

# ---------------------------------------------------------------------------------------- running


class ExpertRun:
    """One generated run: the trajectory and what the checks found."""

    def __init__(self, trajectory: Trajectory, resolved: bool | None, replay_equivalent: bool | None,
                 seconds: float, error: str | None = None) -> None:  # fmt: skip
        self.trajectory = trajectory
        self.resolved = resolved
        self.replay_equivalent = replay_equivalent
        self.seconds = seconds
        self.error = error

    @property
    def ok(self) -> bool:
        return self.error is None and self.resolved is not False and self.replay_equivalent is not False


def run_id(instance_id: str, style: str, seed: int) -> str:
    return f"{instance_id}.expert-{style}-s{seed}"


def gather_facts(sb: Any, spec: TaskSpec) -> RepoFacts:
    """Read what the plan needs from the sandbox's repo (not recorded as steps)."""
    res = sb.exec(f"cd {TESTBED} && git ls-files", timeout=60)
    files = res.output.split("\n") if res.exit_code == 0 else []
    files = [f for f in files if f]
    present = set(files)
    originals: dict[str, str | None] = {}
    for path in spec.gold_files:
        originals[path] = _read(sb, path) if path in present else None
    tests = failing_tests(spec.FAIL_TO_PASS)
    test_sources = {t.file: _read(sb, t.file) for t in tests if t.file and t.file in present}
    collected: set[str] | None = None
    if test_sources and "pytest" in spec.test_command():
        quoted = " ".join(shlex.quote(f) for f in sorted(test_sources))
        res = sb.exec(
            f"cd {TESTBED} && python -m pytest --collect-only -q -p no:cacheprovider {quoted} 2>/dev/null",
            timeout=float(spec.limits.test_timeout),
        )
        collected = {line.strip() for line in res.output.splitlines() if "::" in line}
    return RepoFacts(files=files, originals=originals, test_sources=test_sources, collected=collected)


def _read(sb: Any, path: str) -> str:
    return sb.read_file(f"{TESTBED}/{path}").decode("utf-8", errors="surrogateescape")


def _check_step(step: PlanStep, obs: Any) -> None:
    """A step that must work (an edit, submit) did: else the run is abandoned with the reason."""
    if step.kind == "edit":
        e: Edit = step.info["edit"]
        failed = (
            obs.exit_code != 0
            or "No replacement was performed" in obs.text
            or obs.text.startswith(("Error", "Traceback"))
        )
        if failed:
            raise ExpertError(f"edit of {e.path} failed: {_short(obs.text, 300)}")
    if step.kind == "edit_bad" and obs.exit_code == 0 and "has been edited" in obs.text:
        raise ExpertError(f"the deliberately wrong edit of {step.info['file']} applied")
    if step.kind == "submit" and not obs.submitted:
        raise ExpertError(f"submit failed: {_short(obs.text, 300)}")


def execute_plan(sb: Any, spec: TaskSpec, style: str, seed: int, step_timeout: float = 120.0) -> Trajectory:
    """Gather the facts, plan, run every step in the sandbox `sb`, and return the recorded trajectory."""
    from harness.tools import ToolRuntime

    facts = gather_facts(sb, spec)
    plan = plan_run(spec, facts, style, seed)
    runtime = ToolRuntime(sb, repo=TESTBED)
    runtime.install()
    rng = random.Random(f"{spec.instance_id}|{style}|{seed}|thoughts")
    traj = Trajectory(
        instance_id=spec.instance_id,
        source_format="srl",
        trajectory_id=run_id(spec.instance_id, style, seed),
        problem_statement=spec.problem_statement,
        metadata={"toolset": TOOLSET[style], "generator": GENERATOR, "style": style, "seed": seed},
    )
    prev: PlanStep | None = None
    prev_obs: str | None = None
    for step in plan:
        thought = write_thought(prev, prev_obs, step, spec, rng)
        timeout = float(spec.limits.test_timeout) if step.kind.startswith("test") else step_timeout
        obs = runtime.execute(step.call, timeout=timeout)
        if obs.unsupported or obs.timed_out:
            raise ExpertError(
                f"step {len(traj.steps)} ({step.kind}) {'timed out' if obs.timed_out else 'is unsupported'}"
            )
        _check_step(step, obs)
        traj.steps.append(Step(thought=thought, action=step.call, observation=obs.text,
                               execution_time=round(obs.duration, 4)))  # fmt: skip
        if obs.submitted:
            traj.final_patch = obs.patch or ""
            traj.exit_status = "submitted"
        prev, prev_obs = step, obs.text
    return traj


def generate_run(
    spec: TaskSpec,
    style: str = "tools",
    seed: int = 0,
    *,
    client: docker.DockerClient | None = None,
    grade: bool = True,
    replay: bool = True,
    step_timeout: float = 120.0,
) -> ExpertRun:
    """Make one expert run of `spec` in a fresh sandbox; grade its patch and replay it (each optional)."""
    from harness.docker_env import get_client
    from harness.images import ensure_instance_image
    from harness.sandbox import Sandbox, SandboxConfig

    started = time.perf_counter()
    client = client or get_client()
    image = ensure_instance_image(spec, client=client)
    cfg = SandboxConfig.for_task(spec, image, kind="expert", timeout=step_timeout)
    with Sandbox(cfg, client=client) as sb:
        traj = execute_plan(sb, spec, style, seed, step_timeout)
    resolved: bool | None = None
    equivalent: bool | None = None
    if grade:
        from harness.evaluate import run_instance
        from harness.grading import grade as grade_run

        resolved = grade_run(
            spec, run_instance(spec, traj.final_patch or None, model=GENERATOR, client=client)
        ).resolved
        traj.resolved = resolved
    if replay and resolved is not False:
        from harness.replay import ReplayConfig, replay_task

        rep = replay_task(traj, spec, ReplayConfig(run_tests=False, step_timeout=step_timeout), client=client)
        equivalent = bool(rep.patch_equivalent)
        traj.metadata["replay"] = {"patch_equivalent": equivalent, "matching_steps": rep.n_matching,
                                   "steps": rep.n_steps}  # fmt: skip
    error = None
    if resolved is False:
        error = "the submitted patch does not resolve the task"
    elif equivalent is False:
        error = "the replayed trajectory does not reproduce the submitted diff"
    return ExpertRun(traj, resolved, equivalent, round(time.perf_counter() - started, 3), error)


# ---------------------------------------------------------------------------------------- many runs


@dataclass
class GenerateSummary:
    """What `generate_runs` did: files written now, files already there, runs that failed (and why)."""

    written: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def files(self) -> list[str]:
        return sorted(self.existing + self.written)


def plan_jobs(
    specs: list[TaskSpec], style: str, seed: int, runs_per_task: int
) -> list[tuple[TaskSpec, str, int]]:
    """(task, style, seed) of every run: seeds `seed`..`seed+K-1`; style ``mixed`` alternates tools / bash
    over a task's runs and from task to task (so one run per task still gives both styles)."""
    if style not in (*STYLES, "mixed"):
        raise ExpertError(f"style {style!r}: expected one of {', '.join(STYLES)} or mixed")
    jobs = []
    for i, spec in enumerate(specs):
        for k in range(runs_per_task):
            st = STYLES[(i + k) % len(STYLES)] if style == "mixed" else style
            jobs.append((spec, st, seed + k))
    return jobs


def run_path(out: Any, instance_id: str, style: str, seed: int) -> Any:
    return out / f"{run_id(instance_id, style, seed)}.srl.jsonl"


def generate_runs(
    jobs: list[tuple[TaskSpec, str, int]],
    out: Any,
    *,
    workers: int = 1,
    replay: bool = True,
    client: docker.DockerClient | None = None,
    on_done: Callable[[str, str], None] | None = None,
) -> GenerateSummary:
    """Make every run of `jobs` not already under `out`; write the ones that resolve and replay (one
    JSONL file per run, written atomically); report the others. `on_done(run_id, status)` after each."""
    import concurrent.futures as cf

    from harness.docker_env import get_client
    from harness.images import ensure_instance_image

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    summary = GenerateSummary()
    todo = []
    for spec, style, seed in jobs:
        path = run_path(out, spec.instance_id, style, seed)
        if path.exists():
            summary.existing.append(str(path))
            if on_done:
                on_done(run_id(spec.instance_id, style, seed), "existing")
        else:
            todo.append((spec, style, seed))
    client = client or (get_client() if todo else None)
    for spec in {s.instance_id: s for s, _, _ in todo}.values():  # build images once, before the pool
        ensure_instance_image(spec, client=client)

    def work(job: tuple[TaskSpec, str, int]) -> tuple[str, str]:
        spec, style, seed = job
        rid = run_id(spec.instance_id, style, seed)
        try:
            run = generate_run(spec, style, seed, client=client, replay=replay)
        except ExpertError as exc:
            return rid, f"failed: {exc}"
        if not run.ok:
            return rid, f"failed: {run.error}"
        path = run_path(out, spec.instance_id, style, seed)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(run.trajectory.model_dump_json() + "\n")
        tmp.replace(path)
        return rid, "written"

    with cf.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="srl-expert") as pool:
        for rid, status in pool.map(work, todo):
            if status == "written":
                summary.written.append(str(out / f"{rid}.srl.jsonl"))
            else:
                summary.failed.append((rid, status.removeprefix("failed: ")))
            if on_done:
                on_done(rid, status)
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def ensure_expert_runs(
    out: Any,
    tasks: str | None = None,
    *,
    style: str = "mixed",
    seed: int = 0,
    runs_per_task: int = 2,
    workers: int = 1,
    client: docker.DockerClient | None = None,
    on_done: Callable[[str, str], None] | None = None,
) -> GenerateSummary:
    """Expert runs over every task of the source `tasks` (default: the bundled pack) under `out`, made
    where missing: the project's default training data (`srl demo`, benchmarks). `summary.files` lists them."""
    from envs.sources import load_tasks

    specs = [t for t in load_tasks(tasks).tasks if t.patch.strip()]
    if not specs:
        raise ExpertError(f"task source {tasks or 'examples'}: no task with a gold patch")
    jobs = plan_jobs(specs, style, seed, runs_per_task)
    return generate_runs(jobs, out, workers=workers, client=client, on_done=on_done)
