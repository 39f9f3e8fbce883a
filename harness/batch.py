"""Many instances: :func:`evaluate_predictions` plans (tasks x predictions of a run id), runs what is not
finished yet in a local pool of sandboxes or as Ray tasks, and writes ``summary.json`` per model.

Every instance goes through `harness.instance.evaluate_instance` into
``<output>/<run-id>/<model>/<instance_id>/`` (``patch.diff``, ``eval.log``, ``test_output.txt``,
``report.json``). A finished instance (its ``report.json`` exists for the same patch) is skipped, so
re-running a run id resumes it; every file is written to a temporary name and renamed, ``report.json``
last.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from envs.spec import TaskSpec
from harness.grading import STATUS_ORDER, InstanceReport
from harness.instance import InstanceOutcome, atomic_write, evaluate_instance, read_report, write_outcome
from harness.predictions import GOLD, Prediction, gold_predictions, load_predictions, safe_name
from trajectories.errors import SrlSweError

if TYPE_CHECKING:
    import docker

SUMMARY = "summary.json"


class EvaluateConfig(BaseModel):
    """Everything ``srl evaluate`` can be told."""

    model_config = ConfigDict(extra="forbid")

    predictions: str = Field(description="predictions file (JSON, JSON object or JSONL) or 'gold'")
    tasks: str | None = Field(None, description="task source (see envs.sources); default: bundled examples")
    repos: Path | None = Field(None, description="directory with owner__name checkouts or bundles")
    instance_ids: list[str] = Field(default_factory=list, description="only these instances")
    max_workers: int = Field(1, ge=1, description="sandboxes at once")
    run_id: str | None = Field(None, description="re-use to resume; default: the predictions file's stem")
    timeout: float | None = Field(None, gt=0, description="seconds per test run; default: the task's")
    backend: Literal["process", "ray"] = "process"
    output_dir: Path = Path("runs/evaluation")
    rebuild: bool = False
    ray_address: str | None = Field(None, description="Ray cluster address; default: RAY_ADDRESS or local")


class EvaluationInputError(SrlSweError, ValueError):
    """The tasks, predictions or instance ids given cannot be evaluated (message says why)."""


@dataclass
class Job:
    spec: TaskSpec
    prediction: Prediction
    out_dir: Path


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    reports: list[InstanceReport]
    skipped: int
    summaries: dict[str, dict[str, Any]]


def plan(config: EvaluateConfig) -> tuple[str, Path, list[Job], list[str]]:
    """Load tasks and predictions; return the run id, run dir, the jobs and warnings."""
    from envs.sources import load_tasks

    loaded = load_tasks(config.tasks, config.repos)
    warnings = [f"task not loaded: {err}" for err in loaded.errors]
    by_id = loaded.by_id()
    if not by_id:
        raise EvaluationInputError(
            f"no tasks could be loaded from {config.tasks or 'the bundled examples'}"
            + (f": {loaded.errors[0]}" if loaded.errors else "")
        )
    if config.predictions == GOLD:
        predictions = gold_predictions(by_id.values())
        run_id = config.run_id or GOLD
    else:
        broken = {err.instance_id: err for err in loaded.errors if err.instance_id}
        predictions = load_predictions(config.predictions, known_ids=[*by_id, *broken])
        for pred in predictions:
            if pred.instance_id in broken and pred.instance_id not in by_id:
                warnings.append(f"{pred.instance_id}: not evaluated, its task could not be loaded")
        predictions = [p for p in predictions if p.instance_id in by_id]
        run_id = config.run_id or safe_name(Path(config.predictions).stem)
    if config.instance_ids:
        unknown = [i for i in config.instance_ids if i not in by_id]
        if unknown:
            raise EvaluationInputError(f"--instance-ids: no task named {', '.join(map(repr, unknown))}")
        wanted = set(config.instance_ids)
        predictions = [p for p in predictions if p.instance_id in wanted]
        missing = wanted - {p.instance_id for p in predictions}
        if missing:
            raise EvaluationInputError(f"--instance-ids: no prediction for {', '.join(sorted(missing))}")
    if safe_name(run_id) != run_id:
        raise EvaluationInputError(f"--run-id {run_id!r}: use letters, digits, '.', '_', '+', '-' only")
    run_dir = config.output_dir / run_id
    jobs = [Job(by_id[p.instance_id], p, run_dir / p.model_dir / p.instance_id) for p in predictions]
    return run_id, run_dir, jobs, warnings


def _remove_dead_temp_files(out_dir: Path) -> None:
    """Remove the temporary files (``.<name>.<pid>.<token>.tmp``, see `atomic_write`) that a killed
    process left half-written; another live process's are left alone."""
    from harness.docker_env import pid_alive

    for tmp in out_dir.glob(".*.tmp"):
        parts = tmp.name.split(".")
        if len(parts) >= 4 and parts[-3].isdigit() and not pid_alive(int(parts[-3])):
            tmp.unlink(missing_ok=True)


def _finished(job: Job) -> InstanceReport | None:
    report = read_report(job.out_dir)
    if report is None or report.patch_sha256 != job.prediction.patch_sha256:
        return None
    return report


def summarize(
    reports: list[InstanceReport], model: str, run_id: str, submitted: list[str] | None = None
) -> dict[str, Any]:
    """SWE-bench-style run summary (its keys, plus counts and id lists for our other statuses).

    ``submitted`` are the instance ids the run was asked to evaluate (default: those reported); one
    without a report (an interrupted run) is listed in ``incomplete_ids`` and counts as not resolved.
    """
    by_status: dict[str, list[str]] = {s: [] for s in STATUS_ORDER}
    for r in sorted(reports, key=lambda r: r.instance_id):
        by_status[r.status].append(r.instance_id)
    reported = {r.instance_id for r in reports}
    submitted_ids = sorted(set(submitted if submitted is not None else reported) | reported)
    completed = sorted(
        by_status["resolved"] + by_status["unresolved"] + by_status["tamper"] + by_status["env_error"]
    )
    total = len(submitted_ids)
    return {
        "run_id": run_id,
        "model_name_or_path": model,
        "total_instances": total,
        "submitted_instances": total,
        "completed_instances": len(completed),
        "resolved_instances": len(by_status["resolved"]),
        "unresolved_instances": len(by_status["unresolved"]),
        "tamper_instances": len(by_status["tamper"]),
        "env_error_instances": len(by_status["env_error"]),
        "empty_patch_instances": len(by_status["empty_patch"]),
        "patch_failed_instances": len(by_status["patch_failed"]),
        "timeout_instances": len(by_status["timeout"]),
        "error_instances": len(by_status["error"]),
        "incomplete_instances": total - len(reported),
        "resolved_rate": round(len(by_status["resolved"]) / total, 4) if total else 0.0,
        "submitted_ids": submitted_ids,
        "completed_ids": completed,
        "incomplete_ids": [i for i in submitted_ids if i not in reported],
        **{f"{status}_ids": ids for status, ids in by_status.items()},
        "schema_version": 2,
    }


class _LiveSandboxes:
    """Sandboxes open in worker threads: closed in the background once an instance is done (removing a
    container overlaps with the next instance), and all at once on Ctrl-C."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[Any] = set()
        self._closing: list[threading.Thread] = []

    def add(self, sb: Any) -> None:
        with self._lock:
            self._open.add(sb)

    def release(self, sb: Any) -> None:
        def close() -> None:
            try:
                sb.close()
            finally:
                with self._lock:
                    self._open.discard(sb)

        thread = threading.Thread(target=close, name="srl-eval-close", daemon=True)
        with self._lock:  # started before it is listed: a concurrent drain() may join it at once
            thread.start()
            self._closing.append(thread)

    def drain(self) -> None:
        """Wait until every released sandbox is gone."""
        with self._lock:
            closing, self._closing = self._closing, []
        for thread in closing:
            thread.join()

    def close_all(self) -> None:
        with self._lock:
            live, self._open = list(self._open), set()
        for sb in live:
            try:
                sb.close()
            except Exception:  # already gone
                pass
        self.drain()


def _run_pool(
    jobs: list[Job], config: EvaluateConfig, run_id: str, done: Callable[[Job, InstanceOutcome], None]
) -> None:
    """The local backend: up to ``max_workers`` sandboxes at once, driven by threads (the work itself
    runs in the containers, so threads are enough and start instantly)."""
    from harness.docker_env import get_client
    from harness.sandbox import prewarm_netns

    client = get_client()
    if len(jobs) > config.max_workers:  # each worker starts several sandboxes: worth a namespace each
        prewarm_netns(client, config.max_workers)
    remove_stale_sandboxes(client, run_id)
    live = _LiveSandboxes()

    def work(job: Job) -> InstanceOutcome:
        return evaluate_instance(
            job.spec,
            job.prediction.model_patch,
            model=job.prediction.model_name_or_path,
            client=client,
            timeout=config.timeout,
            rebuild=config.rebuild,
            build_log_dir=job.out_dir / "build",
            labels={"run_id": run_id},
            on_sandbox=live.add,
            release=live.release,
        )

    pool = cf.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="srl-eval")
    try:
        futures = {pool.submit(work, job): job for job in jobs}
        for fut in cf.as_completed(futures):
            done(futures[fut], fut.result())
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        live.close_all()
        raise
    pool.shutdown(wait=True)
    live.drain()


def remove_stale_sandboxes(client: docker.DockerClient, run_id: str) -> int:
    """Remove this run id's evaluation containers left by a process of this host that no longer exists
    (a killed earlier run); returns how many. Containers another host started are left alone."""
    import socket

    from harness.docker_env import LABEL, owner_alive

    removed = 0
    flt = {"label": [f"{LABEL}.kind=evaluate", f"{LABEL}.run_id={run_id}"]}
    for container in client.containers.list(all=True, filters=flt):
        labels = container.labels or {}
        if labels.get(f"{LABEL}.host", socket.gethostname()) != socket.gethostname():
            continue
        if owner_alive(labels):
            continue
        try:
            container.remove(force=True)
            removed += 1
        except Exception:  # removed meanwhile
            pass
    return removed


def _ray_evaluate(
    spec: TaskSpec, prediction: Prediction, timeout: float | None, rebuild: bool, run_id: str
) -> InstanceOutcome:
    return evaluate_instance(
        spec,
        prediction.model_patch,
        model=prediction.model_name_or_path,
        timeout=timeout,
        rebuild=rebuild,
        labels={"run_id": run_id},
    )


def _memory_bytes(text: str) -> int:
    m = re.fullmatch(r"(\d+)([kmgKMG]?)", text.strip())
    if not m:
        return 2 << 30
    return int(m[1]) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m[2].lower()]


def _run_ray(
    jobs: list[Job], config: EvaluateConfig, run_id: str, done: Callable[[Job, InstanceOutcome], None]
) -> None:
    """Each instance as a Ray task asking for the task's CPUs and memory; files are written here."""
    try:
        import ray
    except ImportError:
        raise EvaluationInputError("--backend ray needs the ray extra: pip install 'srl-swe[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=config.ray_address or os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    try:
        remote = ray.remote(_ray_evaluate)
        refs = {
            remote.options(
                num_cpus=job.spec.limits.cpus,
                memory=_memory_bytes(job.spec.limits.memory),
                max_retries=0,
                name=f"srl-evaluate:{job.prediction.instance_id}",
            ).remote(job.spec, job.prediction, config.timeout, config.rebuild, run_id): job
            for job in jobs
        }
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    done(refs[ref], ray.get(ref))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started_here:
            ray.shutdown()


def evaluate_predictions(
    config: EvaluateConfig,
    *,
    on_start: Callable[[str, Path, int, int, list[str]], None] | None = None,
    on_done: Callable[[InstanceReport], None] | None = None,
) -> RunResult:
    """Evaluate every (prediction, task) pair of ``config`` not already finished in this run id.

    ``on_start(run_id, run_dir, to_run, skipped, warnings)`` and ``on_done(report)`` drive a progress
    display; ``warnings`` name tasks of the source that could not be loaded.
    """
    run_id, run_dir, jobs, warnings = plan(config)
    finished: dict[tuple[str, str], InstanceReport] = {}
    todo: list[Job] = []
    for job in jobs:
        if job.out_dir.is_dir():  # a killed earlier run of this run id may have left half-written files
            _remove_dead_temp_files(job.out_dir)
        report = _finished(job)
        if report is not None:
            finished[(job.prediction.model_dir, job.prediction.instance_id)] = report
        else:
            todo.append(job)
    # the biggest test sets first (a test's count is the best cost estimate at hand): a long instance
    # started last would leave the other workers idle at the end
    todo.sort(key=lambda job: -(len(job.spec.FAIL_TO_PASS) + len(job.spec.PASS_TO_PASS)))
    if on_start is not None:
        on_start(run_id, run_dir, len(todo), len(finished), warnings)
    new: list[InstanceReport] = []
    lock = threading.Lock()

    def done(job: Job, outcome: InstanceOutcome) -> None:
        write_outcome(outcome, job.out_dir)
        with lock:
            new.append(outcome.report)
            finished[(job.prediction.model_dir, job.prediction.instance_id)] = outcome.report
        if on_done is not None:
            on_done(outcome.report)

    try:
        if todo:
            runner = _run_ray if config.backend == "ray" else _run_pool
            runner(todo, config, run_id, done)
    finally:
        summaries = _write_summaries(jobs, finished, run_dir, run_id)
    return RunResult(run_id, run_dir, new, len(jobs) - len(todo), summaries)


def _write_summaries(
    jobs: list[Job], finished: dict[tuple[str, str], InstanceReport], run_dir: Path, run_id: str
) -> dict[str, dict[str, Any]]:
    models: dict[str, tuple[str, list[InstanceReport]]] = {}
    for job in jobs:
        key = (job.prediction.model_dir, job.prediction.instance_id)
        entry = models.setdefault(job.prediction.model_dir, (job.prediction.model_name_or_path, []))
        if key in finished:
            entry[1].append(finished[key])
    summaries = {}
    for model_dir, (model, reports) in models.items():
        submitted = [j.prediction.instance_id for j in jobs if j.prediction.model_dir == model_dir]
        summary = summarize(reports, model, run_id, submitted)
        atomic_write(run_dir / model_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
        summaries[model_dir] = summary
    return summaries
