"""`srl task ...` commands: list, show, build, validate and mine repo tasks.

Every command that takes tasks accepts ``--tasks SOURCE [--repos DIR]`` (see `envs.sources`); the
default source is the bundled ``examples`` pack. Tasks that fail to load are reported (file, field,
problem) and skipped; the exit code is then 1.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import typer

from harness import cli_task_options as opt

task_app = typer.Typer(no_args_is_help=True)

TASKS_OPTION = typer.Option(
    None,
    "--tasks",
    "-t",
    help="Task source: a pack name (default: examples), a task dir or .yaml, a SWE-bench .json/.jsonl, "
    "a saved Hugging Face data set, or a plug-in pack (entry point group srl_swe.tasks).",
)
REPOS_OPTION = typer.Option(
    None,
    "--repos",
    help="Directory of repos for owner/name tasks: DIR/owner__name (checkout) or DIR/owner__name.bundle. "
    "Default: clone from GitHub.",
)


def load_for_cli(source: str | None, repos: Path | None, quiet: bool = False):
    """Load tasks for a command; print load errors; exit 2 when the source itself is unreadable."""
    from rich.console import Console

    from envs.sources import TaskSourceError, load_tasks

    err = Console(stderr=True)
    if repos is not None and not repos.is_dir():
        err.print(f"[red]error:[/red] --repos {repos}: not a directory")
        raise typer.Exit(2)
    try:
        result = load_tasks(source, repos)
    except TaskSourceError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if result.errors and not quiet:
        err.print(f"[yellow]{len(result.errors)} task(s) could not be loaded and were skipped:[/yellow]")
        for e in result.errors:
            err.print("  - " + str(e), markup=False, highlight=False, soft_wrap=True)
    for w in getattr(result, "warnings", []) if not quiet else []:
        err.print(f"[yellow]warning:[/yellow] {w}", highlight=False, soft_wrap=True)
    return result


def _select(result, ids: list[str]):
    from envs.sources import UnknownTaskIds

    try:
        return result.select(ids)
    except UnknownTaskIds as exc:
        typer.echo(f"error: {exc} (see `srl task list`)", err=True)
        raise typer.Exit(2) from None


@task_app.command("list")
def list_tasks(tasks: str | None = TASKS_OPTION, repos: Path | None = REPOS_OPTION) -> None:
    """List the tasks of a source as a table."""
    from rich.console import Console
    from rich.table import Table

    result = load_for_cli(tasks, repos)
    table = Table(title=f"tasks: {tasks or 'examples'} ({len(result.tasks)})")
    table.add_column("instance_id", no_wrap=True)
    table.add_column("base", no_wrap=True)
    table.add_column("F2P", justify="right")
    table.add_column("P2P", justify="right")
    table.add_column("test deps", overflow="fold")
    table.add_column("statement", overflow="fold")
    for t in result.tasks:
        table.add_row(
            t.instance_id,
            t.base_commit[:8],
            str(len(t.FAIL_TO_PASS)),
            str(len(t.PASS_TO_PASS)),
            " ".join(t.env.pip_packages) or "-",
            t.problem_statement_source,
        )
    Console(width=max(Console().width, 100)).print(table)
    if result.errors:
        raise typer.Exit(1)


@task_app.command("show")
def show(
    instance_id: str = typer.Argument(..., help="Task id"),
    tasks: str | None = TASKS_OPTION,
    repos: Path | None = REPOS_OPTION,
    scripts: bool = typer.Option(False, "--scripts", help="Also print the derived install and eval scripts."),
) -> None:
    """Show one task: fields, image keys and (optionally) its scripts."""
    import yaml

    from envs.sources import _BlockDumper

    result = load_for_cli(tasks, repos, quiet=True)
    (spec,) = _select(result, [instance_id])
    data = spec.to_yaml_dict()
    data["repo_source"] = spec.repo_source
    typer.echo(yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100).rstrip())
    typer.echo(f"# test command: {spec.test_command()}")
    typer.echo(f"# env key: {spec.env_key[:16]}  instance key: {spec.instance_key[:16]}")
    if scripts:
        for title, text in (
            ("env script", spec.env_script()),
            ("install script", spec.install_script()),
            ("evaluation: prepare script", _prepare_script(spec)),
            ("evaluation: test command", _test_command(spec)),
        ):
            typer.echo(f"# ---- {title} ----")
            typer.echo(text.rstrip())


@task_app.command("build")
def build(
    instance_ids: list[str] = typer.Argument(None, help="Task ids (default: all tasks of the source)"),
    tasks: str | None = TASKS_OPTION,
    repos: Path | None = REPOS_OPTION,
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild the env and instance images."),
    log_root: Path = typer.Option(Path("runs/build_logs"), "--logs", help="Build logs go to LOGS/<id>/."),
    image_source: str = typer.Option(
        "auto",
        "--image-source",
        help="auto (a task's prebuilt image when present, else build), build, or prebuilt (SWE-bench, "
        "SWE-Gym, SWE-smith images; pulled where a registry answers).",
    ),
    base_image: str = typer.Option(
        None, "--base-image", help="Base image for every task (its python3 is used), e.g. python:3.8-slim."
    ),
) -> None:
    """Build (or find cached) instance images; prints each tag and how long it took."""
    import os

    from rich.console import Console

    from harness.base_image import BASE_IMAGE_ENV
    from harness.docker_env import DockerUnavailable, get_client
    from harness.images import IMAGE_SOURCES, ImageBuildError, check_pythons, ensure_instance_image

    result = load_for_cli(tasks, repos)
    specs = _select(result, instance_ids or [])
    console = Console()
    if image_source not in IMAGE_SOURCES:
        console.print(f"[red]error:[/red] --image-source: expected one of {', '.join(IMAGE_SOURCES)}")
        raise typer.Exit(2)
    if base_image:
        os.environ[BASE_IMAGE_ENV] = base_image
    if image_source == "build":
        try:
            check_pythons(specs)
        except ImageBuildError as exc:
            console.print(f"[red]error:[/red] {exc}", markup=False)
            raise typer.Exit(2) from None
    try:
        client = get_client()
    except DockerUnavailable as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    failed = 0

    def say(status, spec, msg: str) -> None:
        if msg.startswith("WARNING"):
            console.print(f"[yellow]{msg}[/yellow]", markup=True, highlight=False)
        status.update(f"{spec.instance_id}: {msg}")

    for spec in specs:
        t0 = time.monotonic()
        with console.status(f"{spec.instance_id}: checking images") as status:
            try:
                tag = ensure_instance_image(
                    spec,
                    client=client,
                    rebuild=rebuild,
                    log_dir=log_root / spec.instance_id,
                    log=lambda m, s=spec, st=status: say(st, s, m),
                    image_source=image_source,
                )
            except ImageBuildError as exc:
                failed += 1
                console.print(f"[red]FAILED[/red] {spec.instance_id}: {exc}", markup=False)
                continue
        console.print(f"[green]ok[/green] {spec.instance_id} -> {tag} ({time.monotonic() - t0:.2f} s)")
    if failed or result.errors:
        raise typer.Exit(1)


@task_app.command("validate")
def validate(
    instance_ids: list[str] = typer.Argument(None, help="Task ids (default: all tasks of the source)"),
    tasks: str | None = TASKS_OPTION,
    repos: Path | None = REPOS_OPTION,
    runs: int = typer.Option(1, "--runs", min=1, help="Run each phase N times; tests that change are flaky."),
    max_workers: int = typer.Option(1, "--max-workers", min=1, help="Tasks validated in parallel."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild images first."),
    report: Path = typer.Option(
        None, "--report", help="JSON report path (default: runs/validate/<time>.json)."
    ),
    log_root: Path = typer.Option(Path("runs/build_logs"), "--logs", help="Logs go to LOGS/<id>/."),
) -> None:
    """Check tasks in sandboxes: FAIL_TO_PASS fails and PASS_TO_PASS passes at base (with the test
    patch); everything passes with the gold patch."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from harness.docker_env import DockerUnavailable
    from harness.validate import default_report_path, validate_tasks

    result = load_for_cli(tasks, repos)
    specs = _select(result, instance_ids or [])
    console = Console()
    report = report or default_report_path()
    try:
        with Progress(
            TextColumn("validate"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console,
        ) as progress:
            bar = progress.add_task("", total=len(specs))

            def done(r) -> None:
                verdict = "valid" if r.valid else "INVALID"
                progress.update(bar, advance=1, description=f"{r.instance_id}: {verdict}")

            results = validate_tasks(
                specs,
                runs=runs,
                max_workers=max_workers,
                rebuild=rebuild,
                log_root=log_root,
                on_done=done,
                report=report,
            )
    except DockerUnavailable as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    table = Table(title=f"validation ({runs} run{'s' if runs > 1 else ''} per task)")
    table.add_column("instance_id", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for col in ("F2P", "P2P", "flaky", "build s", "tests s"):
        table.add_column(col, justify="right")
    table.add_column("problems", overflow="fold")
    for r in results:
        table.add_row(
            r.instance_id,
            "[green]valid[/green]"
            if r.valid
            else ("[yellow]env_error[/yellow]" if r.env_error else "[red]INVALID[/red]"),
            str(len(r.fail_to_pass)),
            str(len(r.pass_to_pass)),
            str(len(r.flaky)),
            f"{r.build_seconds:.1f}",
            f"{r.test_seconds:.1f}",
            "; ".join(p[:160] for p in r.problems) or "-",
        )
    Console(width=max(console.width, 120)).print(table)
    console.print(f"report: {report}")
    if result.errors or not all(r.valid for r in results):
        raise typer.Exit(1)


@task_app.command("mine")
def mine(
    repo: opt.RepoArg = None,
    pypi: opt.MinePypi = None,
    versions: opt.Versions = "..",
    pre: opt.Pre = False,
    since: opt.Since = None,
    rev: opt.Rev = "HEAD",
    max_tasks: opt.MaxTasks = 10,
    max_commits: opt.MaxCommits = 500,
    out: opt.MineOut = Path("runs/mined"),
    name: opt.RepoName = None,
    pip: opt.Pip = None,
    install: opt.Install = None,
    runs: opt.MineRuns = 2,
    copy_repo: opt.CopyRepo = True,
) -> None:
    """Mine tasks from history: commits changing source and tests become candidates; those with tests
    that fail before the non-test diff and pass after it are written as a task pack.

    With ``--pypi NAME --versions A..B`` the candidates are consecutive releases on the package index
    instead (source diff + test diff between their source distributions); their task files store the
    release recipe, not the patches. The work is `harness.mine_runner.mine_history` / `mine_releases`."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from envs.repos import RepoError
    from harness.docker_env import DockerUnavailable
    from harness.mine_runner import MiningError, mine_history, mine_releases

    if pypi and repo:
        typer.echo("error: give either a REPO or --pypi NAME, not both", err=True)
        raise typer.Exit(2)
    if not pypi and not repo:
        typer.echo("error: missing REPO (a checkout, .bundle or URL) or --pypi NAME", err=True)
        raise typer.Exit(2)
    console = Console()
    common = dict(max_tasks=max_tasks, pip=pip, install=install, runs=runs)
    columns = (TextColumn("mine"), BarColumn(), MofNCompleteColumn(), TextColumn("release pairs"))
    if not pypi:  # a history walk has no known length: a spinner, not a bar
        columns = (TextColumn("mine"),)
    with Progress(
        *columns, TimeElapsedColumn(), TextColumn("{task.description}", markup=False), console=console
    ) as progress:
        bar = progress.add_task("", total=None)
        show = functools.partial(_show_mine_event, progress, bar)
        try:
            if pypi:
                report = mine_releases(pypi, out, versions=versions, pre=pre, progress=show, **common)
                progress.update(bar, completed=len(report.versions) - 1, description="done")
            else:
                report = mine_history(
                    repo,
                    out,
                    name=name,
                    rev=rev,
                    since=since,
                    max_commits=max_commits,
                    copy_repo=copy_repo,
                    progress=show,
                    **common,
                )
        except (MiningError, RepoError, DockerUnavailable) as exc:
            progress.stop()
            console.print(f"[red]error:[/red] {exc}", markup=False, highlight=False)
            raise typer.Exit(2) from None
    console.print(f"{len(report.kept)} task(s) from {report.tried} candidate(s) written to {out}")
    if not report.kept:
        raise typer.Exit(1)


@task_app.command("synth")
def synth(
    pypi: opt.SynthPypi,
    n: opt.SynthN = 5,
    seed: opt.Seed = 0,
    out: opt.SynthOut = Path("runs/synth"),
    max_tries: opt.MaxTries = 100,
    pip: opt.Pip = None,
    install: opt.Install = None,
    kind: opt.Kinds = None,
    baseline_runs: opt.BaselineRuns = 1,
    max_broken: opt.MaxBroken = 0.5,
) -> None:
    """Synthesize tasks from a release: mutate one function at a time (swap an operator, invert a
    condition, shift a bound, drop a statement, swap arguments, change a constant) and keep the mutations
    that break at least one test while every other test still passes. Each kept one is written at once as
    a task file holding its recipe (gold patch = the inverse of the mutation) and the validated tests."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from envs.synth import KINDS
    from harness.docker_env import DockerUnavailable, get_client
    from harness.images import ImageBuildError
    from harness.synth_runner import SynthRunError, synthesize

    console = Console()
    bad = [k for k in kind or [] if k not in KINDS]
    if bad:
        console.print(f"[red]error:[/red] --kind {bad[0]}: expected one of {', '.join(KINDS)}")
        raise typer.Exit(2)
    try:
        client = get_client()
    except DockerUnavailable as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    with Progress(
        TextColumn("synth"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("kept, {task.fields[tried]} tried"),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),
        console=console,
    ) as progress:
        bar = progress.add_task("", total=n, tried=0)

        def update(message: str, report) -> None:
            if message.startswith("kept "):
                progress.console.print(f"[green]task[/green] {message[5:]}", highlight=False)
            progress.update(bar, completed=report.kept, tried=report.tried, description=message[:70])

        try:
            report = synthesize(
                pypi,
                out,
                n=n,
                seed=seed,
                max_tries=max_tries,
                pip=pip,
                install=install,
                client=client,
                kinds=kind or None,
                progress=update,
                baseline_runs=baseline_runs,
                max_broken=max_broken,
            )
        except (SynthRunError, ImageBuildError) as exc:
            progress.stop()
            console.print(f"[red]error:[/red] {exc}", markup=False, highlight=False)
            raise typer.Exit(2) from None
    _print_synth_summary(console, report, out)
    if report.kept == 0:
        raise typer.Exit(1)


def _show_mine_event(progress, bar, event) -> None:  # noqa: ANN001
    """One `harness.mine_runner.MineEvent` on the console: kept / skipped lines, the bar's status."""
    where = f"{event.instance_id} ({event.title})"
    if event.kind == "start":
        progress.console.print(event.message, highlight=False)
        progress.update(bar, total=event.total)
    elif event.kind == "kept":
        progress.console.print(f"[green]task[/green] {where}: {event.message}", highlight=False)
    elif event.kind == "skipped":
        progress.console.print(f"[dim]skip[/dim] {where}: {event.message[:150]}", highlight=False)
    else:
        progress.update(bar, description=f"{event.instance_id}: {event.message}"[:90])
    if event.total is not None:
        progress.update(bar, completed=event.done)


def _print_synth_summary(console, report, out: Path) -> None:  # noqa: ANN001
    """Why mutations were rejected, what was kept, and what the baseline and each try cost."""
    import re
    from collections import Counter

    per_try = report.try_seconds / max(1, report.tried)
    reasons = Counter(re.sub(r"^\d+ ", "", a.reason.split(" (")[0]) for a in report.attempts if not a.kept)
    if reasons:
        console.print("rejected: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()), highlight=False)
    console.print(
        f"{report.kept} task(s) ({report.existing} already there) from {report.tried} tried mutation(s) of "
        f"{report.sites} sites in {report.package} {report.version} -> {out}\n"
        f"baseline suite {report.baseline_seconds:.1f} s ({report.baseline_passing} passing tests), "
        f"{per_try:.1f} s per try"
    )


def _prepare_script(spec) -> str:  # noqa: ANN001
    """What `harness.evaluate.run_instance` runs before the tests (for a patch touching no test file)."""
    from harness.evaluate import paths_to_reset, prepare_script

    return prepare_script("/tmp/srl-eval-TOKEN", [], paths_to_reset("", spec.test_patch))


def _test_command(spec) -> str:  # noqa: ANN001
    from envs.swebench_eval import eval_script_of, runner_script
    from harness.evaluate import build_test_command

    plan = eval_script_of(spec)  # a row's eval_script runs whole, in place of the bare test command
    if plan is None:
        return build_test_command(spec, "/tmp/srl-results-TOKEN.xml")
    run = "bash /tmp/srl-eval-TOKEN/eval_script.sh"
    return (
        build_test_command(spec, "/tmp/srl-results-TOKEN.xml", None, run)
        + "\n# ---- evaluation: eval_script.sh (the row's eval_script, see docs/tasks.md) ----\n"
        + runner_script(plan, spec.base_commit, "TOKEN")
    )
