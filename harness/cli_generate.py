"""`srl traj generate`: expert runs made by the scripted expert from each task's gold patch.

Mounted into the ``traj`` group by the root CLI (`srl_agent.cli`), since trajectories/ does not
import harness. Heavy modules are imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml


def generate(
    tasks: str = typer.Option(
        None,
        "--tasks",
        "-t",
        help="Task source (pack, dir, task file, SWE-bench JSON/JSONL; default: examples).",
    ),
    instance: list[str] = typer.Option(
        None, "--instance", "-i", help="Only these instance ids (repeatable)."
    ),
    style: str = typer.Option(
        "tools", "--style", help="tools: the editor tool; bash: bash-only edits; mixed: alternate per run."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the first run of each task (run k uses seed+k)."),
    runs_per_task: int = typer.Option(1, "--runs-per-task", "-k", min=1, help="Runs per task."),
    out: Path = typer.Option(Path("runs/expert"), "--out", help="Directory of the JSONL trajectories."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Runs at once (each uses sandboxes)."),
    no_replay: bool = typer.Option(False, "--no-replay", help="Skip the replay check of each run."),
) -> None:
    """Generate expert trajectories from gold patches in sandboxes; keep the runs that resolve and replay.

    Resumable: runs whose file exists under --out are skipped. Writes one ``<id>.expert-<style>-s<seed>.srl.jsonl``
    per run (the format `srl traj import` and `srl data build` read) and ``generate_report.yaml``.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.docker_env import DockerUnavailable
    from harness.expert import ExpertError, generate_runs, plan_jobs

    console = Console(stderr=True)
    specs = _tasks_with_gold(tasks, instance, console)
    try:
        jobs = plan_jobs(specs, style, seed, runs_per_task)
    except ExpertError as exc:
        console.print(f"[red]error:[/] --style: {exc}", highlight=False)
        raise typer.Exit(2) from None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(f"expert runs over {len(specs)} task(s)", total=len(jobs))

        def done(rid: str, status: str) -> None:
            if status.startswith("failed"):
                progress.console.print(f"[yellow]{rid}:[/] {status}", highlight=False)
            progress.advance(bar)

        try:
            summary = generate_runs(jobs, out, workers=workers, replay=not no_replay, on_done=done)
        except DockerUnavailable as exc:
            console.print(f"[red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None
    report = {
        "tasks": tasks or "examples",
        "style": style,
        "seed": seed,
        "runs_per_task": runs_per_task,
        "written": summary.written,
        "existing": summary.existing,
        "failed": [{"run": r, "reason": why} for r, why in summary.failed],
        "seconds": summary.seconds,
    }
    # YAML, not JSON: the directory is read as trajectories (`srl data build`), which takes *.json files
    (out / "generate_report.yaml").write_text(yaml.safe_dump(report, sort_keys=False))
    console.print(
        f"{len(summary.written)} run(s) written, {len(summary.existing)} already there, "
        f"{len(summary.failed)} failed, in {summary.seconds:.0f} s -> {out}",
        highlight=False,
    )
    if summary.failed and not summary.files:
        raise typer.Exit(1)


def _tasks_with_gold(tasks: str | None, instance: list[str] | None, console: Any) -> list:
    """The tasks of the source (only `instance` when given) that have a gold patch; exit 2 with the
    reason when there are none or an id is unknown."""
    from envs.sources import TaskSourceError, UnknownTaskIds, load_tasks

    try:
        loaded = load_tasks(tasks)
    except TaskSourceError as exc:
        console.print(f"[red]error:[/] --tasks: {exc}", highlight=False)
        raise typer.Exit(2) from None
    for err in loaded.errors:
        console.print(f"[yellow]skipped task:[/] {err}", highlight=False)
    try:
        specs = loaded.select(instance or [])
    except UnknownTaskIds as exc:
        console.print(f"[red]error:[/] --instance: {exc}, in {tasks or 'examples'}", highlight=False)
        raise typer.Exit(2) from None
    specs = [s for s in specs if s.patch.strip()]
    if not specs:
        console.print(f"[red]error:[/] --tasks: no task with a gold patch in {tasks or 'examples'}")
        raise typer.Exit(2)
    return specs
