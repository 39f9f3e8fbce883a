"""`srl traj ...` and `srl data ...` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from trajectories.build import BuildReport
    from trajectories.importers import ImportReport

traj_app = typer.Typer(no_args_is_help=True)
data_app = typer.Typer(no_args_is_help=True)


@traj_app.command("import")
def import_(
    paths: list[Path] = typer.Argument(
        ...,
        help="Trajectory files, folders (searched recursively) or `save_to_disk` data set folders: JSONL, "
        ".jsonl.gz, JSON, Parquet.",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Directory for the imported trajectories (one JSONL per input container)."
    ),
    fmt: str | None = typer.Option(
        None,
        "--format",
        help="swe-agent | mini-swe-agent | openhands | openai | swe-smith | openhands-text | nebius | srl "
        "(default: detect per row).",
    ),
) -> None:
    """Import recorded agent runs into the srl-swe trajectory schema (JSONL, one trajectory a line).

    Rows that fail are skipped with their reason and the batch goes on; the exit status is 1 when any
    row or file failed, and every failed one is named.
    """
    from rich.console import Console

    from trajectories.importers import NoTrajectoryFiles, import_files

    console = Console(stderr=False)
    try:
        with _ImportBar(console) as bar:
            report = import_files(paths, out, fmt, progress=bar)
    except NoTrajectoryFiles as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:  # an unknown --format
        raise typer.BadParameter(str(exc), param_hint="--format") from None
    console.print(_import_table(report))
    for e in report.errors:
        console.print(f"[red]error:[/red] {e}", markup=True, highlight=False, soft_wrap=True)
    console.print(report.summary())
    if not report.ok:
        raise typer.Exit(1)


class _ImportBar:
    """A transient rich progress bar, one task per file being imported (`ImportProgress` hooks)."""

    def __init__(self, console: Console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = None

    def __enter__(self) -> _ImportBar:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def file_started(self, path: Path, rows: int | None) -> None:
        self.task = self.bar.add_task(f"importing {path.name}", total=rows)

    def row_done(self) -> None:
        self.bar.advance(self.task)

    def file_done(self, path: Path) -> None:
        self.bar.remove_task(self.task)


def _import_table(report: ImportReport) -> Table:
    from rich.table import Table

    table = Table(title="srl traj import")
    table.add_column("file", overflow="fold")
    table.add_column("format", no_wrap=True)
    table.add_column("trajs", justify="right", no_wrap=True)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("tools", no_wrap=True)
    table.add_column("skipped steps (why)")
    table.add_column("notes / errors")
    for f in report.files:
        msgs = [f"{v} {k}" for k, v in f.notes.items()]
        msgs += [f"[red]{len(f.errors)} failed row(s), see below[/red]"] if f.errors else []
        table.add_row(
            f.path.name,
            ", ".join(f.formats) or "?",
            str(f.trajectories),
            str(f.steps),
            ", ".join(f"{v} {k}" for k, v in f.tools.items()) or "-",
            "\n".join(f"{v} {k}" for k, v in f.skipped.items()) or "-",
            "\n".join(msgs) or "-",
        )
    return table


@traj_app.command("show")
def show(
    path: Path = typer.Argument(..., help="A trajectory file in any importable format."),
    step: int | None = typer.Option(None, "--step", help="Show only this step (0-based), in full."),
    index: int = typer.Option(0, "--index", help="Which trajectory of a multi-trajectory file."),
    fmt: str | None = typer.Option(None, "--format", help="Force the input format."),
    width: int = typer.Option(
        600, "--max-chars", help="Cut thoughts/observations longer than this (0 = no cut)."
    ),
) -> None:
    """Render a trajectory readably: header, then each step's thought, action and observation."""
    from rich.console import Console, Group
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.text import Text

    from trajectories.actions import render_action
    from trajectories.importers import import_file

    report = import_file(path, fmt)
    if report.errors:
        for e in report.errors:
            typer.echo(f"error: {e}", err=True)
        if not report.imported:
            raise typer.Exit(2)
    if not 0 <= index < len(report.imported):
        raise typer.BadParameter(f"{path} holds {len(report.imported)} trajectories", param_hint="--index")
    imp = report.imported[index]
    t = imp.trajectory
    console = Console()

    def cut(s: str) -> str:
        if step is not None or not width or len(s) <= width:
            return s
        return s[:width] + f"\n[... {len(s) - width} more characters]"

    if step is None:
        head = Text.assemble(
            (t.instance_id, "bold"),
            f"  format={t.source_format}  "
            + (
                f"tools={','.join(x.name for x in t.tools)} (recorded)  "
                if t.tools
                else f"toolset={t.metadata.get('toolset')}  "
            )
            + f"steps={len(t.steps)}  "
            f"exit={t.exit_status}  resolved={t.resolved}\n",
            (cut(t.problem_statement), "dim"),
        )
        console.print(Panel(head, title="trajectory"))
        for s in imp.skipped:
            console.print(f"[yellow]skipped turn {s.index}: {s.reason} {s.detail[:100]}")
    steps = range(len(t.steps)) if step is None else [step]
    for k in steps:
        if not 0 <= k < len(t.steps):
            raise typer.BadParameter(f"step {k} out of range 0..{len(t.steps) - 1}", param_hint="--step")
        s = t.steps[k]
        parts = [
            Text(cut(s.thought) or "(no thought)", style="italic"),
            Syntax(render_action(s.action), "xml", word_wrap=True),
        ]
        if s.raw_action is not None:
            parts.append(Text(f"recorded as: {cut(s.raw_action)}", style="dim"))
        body = Group(
            *parts,
            Panel(Text(cut(s.observation) or "(no output)"), title="observation", border_style="dim"),
        )
        console.print(Panel(body, title=f"step {k} · {s.action.name}"))


@data_app.command("build")
def build(
    trajectories: list[Path] = typer.Option(
        ..., "--trajectories", help="Dirs/files of trajectories (any format)."
    ),
    out: Path = typer.Option(..., "--out", help="Output directory of the DatasetDict (train/validation)."),
    context_steps: int = typer.Option(
        2, "--context-steps", min=0, help="Last action/output rounds shown in full."
    ),
    max_obs_tokens: int | None = typer.Option(
        None, "--max-obs-tokens", min=1, help="Cut each output to this many tokens."
    ),
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        help="tokenizer.json, model dir, or cached HF name (never downloaded); default chars/4.",
    ),
    val_fraction: float = typer.Option(
        0.05, "--val-fraction", min=0.0, max=0.99, help="Share of trajectories for validation."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the trajectory-level split."),
    num_proc: int = typer.Option(2, "--num-proc", min=1, help="Worker processes."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Also write <split>.jsonl into OUT."),
    parquet: bool = typer.Option(False, "--parquet", help="Also write <split>.parquet into OUT."),
) -> None:
    """Expand trajectories into step-wise SRL instances (one per expert action)."""
    from datasets.utils.logging import disable_progress_bar
    from rich.console import Console

    from trajectories.build import build_data
    from trajectories.tokens import TokenizerNotFound

    disable_progress_bar()  # the summary table says what was built
    console = Console()
    try:
        with console.status("expanding trajectories into step-wise instances ...") as status:

            def progress(n: int) -> None:
                status.update(f"expanding trajectories into step-wise instances ... {n} shard(s) done")

            report = build_data(
                trajectories,
                out,
                context_steps=context_steps,
                max_obs_tokens=max_obs_tokens,
                tokenizer=tokenizer,
                val_fraction=val_fraction,
                seed=seed,
                num_proc=num_proc,
                jsonl=jsonl,
                parquet=parquet,
                progress=progress,
            )
    except (TokenizerNotFound, FileNotFoundError, FileExistsError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    console.print(_build_table(report))
    console.print(report.summary())
    for e in report.errors:
        console.print(f"[red]error:[/red] {e}", markup=True, highlight=False, soft_wrap=True)
    if not report.ok:
        console.print(f"{len(report.errors)} row(s) failed and were skipped")
        raise typer.Exit(1)


def _build_table(report: BuildReport) -> Table:
    from rich.table import Table

    table = Table(title=f"srl data build -> {report.out} ({report.seconds:.1f} s)")
    for col in ("split", "instances", "trajectories", "tools"):
        table.add_column(col)
    for split in report.splits():
        tools = ", ".join(f"{k} {v}" for k, v in split.tools)
        table.add_row(split.name, str(split.instances), str(split.trajectories), tools)
    return table


@data_app.command("show")
def data_show(
    dataset: Path = typer.Argument(..., help="A data set directory written by `srl data build`."),
    split: str = typer.Option("train", "--split"),
    row: int = typer.Option(0, "--row"),
) -> None:
    """Print one step-wise instance: prompt messages, expert completion, metadata."""
    from datasets import DatasetDict, load_from_disk

    try:
        dd = load_from_disk(str(dataset))
    except FileNotFoundError as exc:
        typer.echo(f"error: {dataset}: not a data set written by `srl data build` ({exc})", err=True)
        raise typer.Exit(2) from None
    if isinstance(dd, DatasetDict):
        if split not in dd:
            raise typer.BadParameter(
                f"no split {split!r} in {dataset} (has {', '.join(dd)})", param_hint="--split"
            )
        dd = dd[split]
    if not 0 <= row < len(dd):
        raise typer.BadParameter(f"row {row} out of range 0..{len(dd) - 1}", param_hint="--row")
    r = dd[row]
    for m in r["prompt"] + r["completion"]:
        typer.echo(f"===== {m['role']} =====\n{m['content']}")
    meta = {k: r[k] for k in ("instance_id", "trajectory_id", "step", "n_steps", "tool")}
    typer.echo(f"===== meta =====\n{json.dumps(meta)}")
