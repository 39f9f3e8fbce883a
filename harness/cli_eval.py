"""`srl evaluate`: grade SWE-bench-format predictions in sandboxes, with a progress bar and a summary table.

Heavy modules (docker, ray, the harness internals) are imported when the command runs, not when the
`srl` app is built.
"""

from __future__ import annotations

import gc
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from harness.interrupt import raise_interrupt

if TYPE_CHECKING:
    from rich.console import Console

    from harness.evaluate import EvaluateConfig, RunResult
    from harness.grading import InstanceReport


def evaluate(
    predictions: str = typer.Option(
        None, "--predictions", "-p", help="Predictions file (JSON list, JSON object or JSONL), or 'gold'."
    ),
    tasks: str = typer.Option(
        None, "--tasks", "-t", help="Task source (pack, dir, task file, SWE-bench JSON/JSONL)."
    ),
    repos: Path = typer.Option(None, "--repos", help="Directory of owner__name checkouts or .bundle files."),
    instance_ids: list[str] = typer.Option(
        None, "--instance-ids", "-i", help="Only these instances (repeat or comma-separate)."
    ),
    max_workers: int = typer.Option(
        None, "--max-workers", "-w", min=1, help="Sandboxes at once (default 1)."
    ),
    run_id: str = typer.Option(
        None, "--run-id", help="Run id; re-use it to resume. Default: predictions stem."
    ),
    timeout: float = typer.Option(
        None, "--timeout", min=1, help="Seconds per test run (default: the task's)."
    ),
    backend: str = typer.Option(None, "--backend", help="process (local pool, default) or ray."),
    output_dir: Path = typer.Option(
        None, "--output-dir", help="Where runs are written (default runs/evaluation)."
    ),
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild the instance images first."),
    config_file: Path = typer.Option(
        None, "--config", help="YAML file with any of these options (snake_case); flags override it."
    ),
    image_source: str = typer.Option(
        None,
        "--image-source",
        help="auto (a task's prebuilt image when present, else build), build, or prebuilt (SWE-bench, "
        "SWE-Gym, SWE-smith images; pulled where a registry answers).",
    ),
    base_image: str = typer.Option(
        None, "--base-image", help="Base image for every task (its python3 is used), e.g. python:3.8-slim."
    ),
) -> None:
    """Grade patches against their tasks' tests in sandboxes (SWE-bench format)."""
    from rich.console import Console

    console = Console(stderr=True)
    flags = {
        "predictions": predictions,
        "tasks": tasks,
        "repos": repos,
        "instance_ids": _split_ids(instance_ids) or None,
        "max_workers": max_workers,
        "run_id": run_id,
        "timeout": timeout,
        "backend": backend,
        "output_dir": output_dir,
        "rebuild": rebuild or None,
    }
    try:
        _set_image_options(image_source, base_image)
        config = load_config(config_file, {k: v for k, v in flags.items() if v is not None})
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    result = _run_to_exit(config, console)
    _print_table(result, console)
    # The interpreter's last garbage collections at exit walk every object the imported modules made
    # (pydantic, docker, rich, ...): 0.1-0.2 s, as long as a small task's tests. Nothing of it needs
    # collecting (the process ends), so it is moved out of the collector's reach.
    gc.freeze()


def _split_ids(raw: list[str] | None) -> list[str]:
    """``-i a -i b,c`` -> ``[a, b, c]``."""
    return [i.strip() for item in (raw or []) for i in item.split(",") if i.strip()]


def _set_image_options(image_source: str | None, base_image: str | None) -> None:
    """`--image-source` / `--base-image` for this process and its workers (read by harness.images);
    raises ValueError for an unknown image source."""
    from harness.base_image import BASE_IMAGE_ENV
    from harness.images import IMAGE_SOURCE_ENV, IMAGE_SOURCES

    if image_source is not None:
        if image_source not in IMAGE_SOURCES:
            raise ValueError(f"--image-source: expected one of {', '.join(IMAGE_SOURCES)}")
        os.environ[IMAGE_SOURCE_ENV] = image_source
    if base_image:
        os.environ[BASE_IMAGE_ENV] = base_image


def _run_to_exit(config: EvaluateConfig, console: Console) -> RunResult:
    """`_run`, with bad input (exit 2) and an interrupt or SIGTERM (exit 130: the finished instances
    stay, the same run id resumes) turned into the command's exit statuses."""
    from harness.evaluate import EvaluationInputError
    from harness.predictions import PredictionsError

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        return _run(config, console)
    except (PredictionsError, EvaluationInputError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted[/yellow]: finished instances are kept; re-run with the same "
            "--run-id to resume"
        )
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def load_config(path: Path | None, overrides: dict) -> EvaluateConfig:
    """`EvaluateConfig` from an optional YAML file, then the command-line flags on top.

    Raises ValueError naming the file (or flag) and the field.
    """
    import yaml
    from pydantic import ValidationError

    from harness.evaluate import EvaluateConfig

    data: dict = {}
    where = "command line"
    if path is not None:
        where = str(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot read the config: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of options, got {type(loaded).__name__}")
        data = loaded or {}
    data.update(overrides)
    if "predictions" not in data:
        raise ValueError("--predictions is required (a predictions file, or 'gold')")
    try:
        return EvaluateConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        source = "--" + field.replace("_", "-") if field in overrides else f"{where}: {field}"
        raise ValueError(f"{source}: {err['msg']}") from None


def _run(config: EvaluateConfig, console: Console) -> RunResult:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from harness.evaluate import evaluate_predictions

    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]evaluate[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("resolved {task.fields[resolved]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    state: dict = {}

    def on_start(run_id: str, run_dir: Path, to_run: int, skipped: int, warnings: list[str]) -> None:
        for warning in warnings:
            console.print(f"[yellow]warning:[/yellow] {warning}")
        if skipped:
            console.print(f"run [bold]{run_id}[/bold]: {skipped} instance(s) already finished, skipped")
        console.print(f"run [bold]{run_id}[/bold] -> {run_dir}  ({to_run} to evaluate)")
        if to_run:
            state["task"] = progress.add_task(run_id, total=to_run, resolved=0)
            progress.start()

    def on_done(report: InstanceReport) -> None:
        state["resolved"] = state.get("resolved", 0) + int(report.resolved)
        progress.update(state["task"], advance=1, resolved=state["resolved"])
        if report.status not in ("resolved", "unresolved"):
            note = report.error or report.env_error or (str(report.tamper[0]) if report.tamper else "")
            progress.console.print(
                f"  {report.instance_id}: [yellow]{report.status}[/yellow] {note}".rstrip()
            )

    try:
        return evaluate_predictions(config, on_start=on_start, on_done=on_done)
    finally:
        progress.stop()


def _print_table(result: RunResult, console: Console) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from harness.grading import STATUS_ORDER

    table = Table(title=f"srl evaluate: run {result.run_id}", box=box.SIMPLE_HEAD, pad_edge=False)
    headers = {"empty_patch": "empty", "patch_failed": "no-apply"}
    table.add_column("model", no_wrap=True)
    table.add_column("total", justify="right", no_wrap=True)
    for status in STATUS_ORDER:
        name = headers.get(status, status)
        table.add_column(name, justify="right", min_width=len(name), no_wrap=True)
    incomplete = any(summary["incomplete_ids"] for summary in result.summaries.values())
    if incomplete:
        table.add_column("not run", justify="right", no_wrap=True)
    table.add_column("%", justify="right", min_width=5, no_wrap=True)
    for summary in result.summaries.values():
        counts = [str(len(summary[f"{s}_ids"])) for s in STATUS_ORDER]
        if incomplete:
            counts.append(str(len(summary["incomplete_ids"])))
        table.add_row(
            summary["model_name_or_path"],
            str(summary["total_instances"]),
            *counts,
            f"{100 * summary['resolved_rate']:.1f}",
        )
    out = Console()  # the table on stdout, progress and messages on stderr
    if not out.is_terminal:
        out.width = max(out.width, 120)
    out.print(table)
    for model_dir in result.summaries:
        console.print(f"summary: {result.run_dir / model_dir / 'summary.json'}")
