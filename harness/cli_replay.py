"""`srl traj replay TRAJ --task ID`: replay an expert trajectory in a sandbox of its task and report.

Heavy modules (docker, the sandbox) are imported when the command runs, not when the app is built.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def replay(
    trajectory: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="Trajectory file (any importable format)."
    ),
    task: str = typer.Option(None, "--task", help="Task instance id (default: the trajectory's)."),
    tasks: str = typer.Option(
        None, "--tasks", "-t", help="Task source (pack, dir, task file, SWE-bench JSON/JSONL)."
    ),
    repos: Path = typer.Option(None, "--repos", help="Directory of owner__name checkouts or .bundle files."),
    threshold: float = typer.Option(
        0.9, "--threshold", min=0, max=1, help="Similarity at which a step matches."
    ),
    step_timeout: float = typer.Option(120.0, "--step-timeout", min=1, help="Seconds per replayed action."),
    test_timeout: float = typer.Option(
        None, "--test-timeout", min=1, help="Seconds for the tests (default: task's)."
    ),
    no_tests: bool = typer.Option(False, "--no-tests", help="Do not run the task's tests on the final diff."),
    workdir: str = typer.Option(
        None, "--recorded-workdir", help="Repo path in the recording (default: inferred)."
    ),
    output: Path = typer.Option(None, "--output", "-o", help="Write the JSON report here."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report instead of the table."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show recorded vs. replayed text of diverged steps."
    ),
) -> None:
    """Replay an expert trajectory step by step in a fresh sandbox; compare observations, diff and tests."""
    from rich.console import Console

    from harness.replay import ReplayConfig, load_task, load_trajectory, replay_task

    console = Console(stderr=True)
    try:
        traj = load_trajectory(trajectory, task)
        spec = load_task(task or traj.instance_id, tasks, repos)
    except (ValueError, KeyError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        console.print(f"[red]error:[/red] {message}", highlight=False)
        raise typer.Exit(2) from None
    if task and task != traj.instance_id:
        console.print(f"[yellow]note:[/yellow] replaying {traj.instance_id} in task {task}", highlight=False)
    config = ReplayConfig(
        threshold=threshold,
        step_timeout=step_timeout,
        test_timeout=test_timeout,
        run_tests=not no_tests,
        recorded_workdir=workdir,
    )

    def on_step(step) -> None:
        if not as_json:
            console.print(f"  step {step.index:>3} {step.tool:<18} {step.status}", highlight=False)

    try:
        report = replay_task(
            traj, spec, config, on_step=on_step, log=lambda m: console.print(f"[dim]{m}[/dim]")
        )
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        raise typer.Exit(130) from None
    data = report.model_dump(mode="json")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print_report(report, Console(), verbose=verbose)


def print_report(report, console, verbose: bool = False) -> None:
    """The replay report as a step table and a summary."""
    from rich.table import Table

    colors = {
        "match": "green",
        "layout": "cyan",
        "diverged": "yellow",
        "unsupported": "red",
        "timeout": "red",
    }
    table = Table(title=f"replay of {report.instance_id} ({report.source_format})", show_lines=False)
    for col, kw in (("#", {"justify": "right"}), ("tool", {}), ("action", {"overflow": "ellipsis", "no_wrap": True, "max_width": 60}),
                    ("status", {}), ("similarity", {"justify": "right"}), ("exit", {"justify": "right"}),
                    ("time s", {"justify": "right"})):  # fmt: skip
        table.add_column(col, **kw)
    for s in report.steps:
        c = colors.get(s.status, "white")
        table.add_row(
            str(s.index),
            s.tool,
            s.action,
            f"[{c}]{s.status}[/{c}]",
            "-" if s.similarity is None else f"{s.similarity:.3f}",
            "-" if s.exit_code is None else str(s.exit_code),
            f"{s.duration:.3f}",
        )
    console.print(table)
    if verbose:
        for s in report.steps:
            if s.status in ("diverged", "timeout"):
                console.rule(f"step {s.index}: recorded")
                console.print(s.recorded, markup=False, highlight=False)
                console.rule(f"step {s.index}: replayed")
                console.print(s.observed, markup=False, highlight=False)

    def yn(value: bool | None) -> str:
        return "n/a" if value is None else ("[green]yes[/green]" if value else "[red]no[/red]")

    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("steps", f"{report.n_steps} ({report.n_executed} executed, {report.n_matching} matching, "
                             f"{report.n_unsupported} unsupported)")  # fmt: skip
    if report.unsupported_tools:
        summary.add_row("unsupported tools", ", ".join(report.unsupported_tools))
    summary.add_row(
        "mean similarity", "-" if report.mean_similarity is None else f"{report.mean_similarity:.3f}"
    )
    summary.add_row(
        "first divergent step",
        "none" if report.first_divergent_step is None else str(report.first_divergent_step),
    )
    summary.add_row("submitted", yn(report.submitted))
    summary.add_row("final diff = recorded patch", yn(report.patch_identical)
                    + ("" if report.patch_similarity is None else f" (similarity {report.patch_similarity:.3f})"))  # fmt: skip
    resolved = yn(report.resolved)
    if report.grading:
        resolved += f" ({report.grading.get('status')})"
    summary.add_row("resolved", resolved)
    for kind, tests in ((report.grading or {}).get("tests_status") or {}).items():
        ok, bad = tests.get("success", []), tests.get("failure", [])
        if not ok and not bad:
            continue
        line = f"{len(ok)}/{len(ok) + len(bad)} pass"
        if bad:
            line += "; failing: " + ", ".join(bad[:3]) + (" ..." if len(bad) > 3 else "")
        summary.add_row(kind, line)
    summary.add_row("time", f"{report.wall_time:.1f} s (replay {report.replay_time:.1f} s)")
    console.print(summary)
