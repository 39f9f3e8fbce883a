"""`srl traj ...` and `srl data ...` commands."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer

traj_app = typer.Typer(no_args_is_help=True)
data_app = typer.Typer(no_args_is_help=True)


def _out_name(out: Path, stem: str, used: set[str]) -> Path:
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}-{n}"
    used.add(name)
    return out / f"{name}.jsonl"


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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from trajectories.importers import FORMATS, iter_file, stem_of
    from trajectories.importers import find_files as _find
    from trajectories.rows import SUFFIXES, RowsError, count_rows

    if fmt is not None and fmt not in FORMATS:
        raise typer.BadParameter(
            f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}", param_hint="--format"
        )
    files = list(_find(paths))
    if not files:
        typer.echo(
            f"error: no trajectory files ({', '.join('*' + s for s in SUFFIXES)}, or save_to_disk folders) in "
            f"{', '.join(map(str, paths))}",
            err=True,
        )
        raise typer.Exit(2)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=False)
    table = Table(title="srl traj import")
    table.add_column("file", overflow="fold")
    table.add_column("format", no_wrap=True)
    table.add_column("trajs", justify="right", no_wrap=True)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("tools", no_wrap=True)
    table.add_column("skipped steps (why)")
    table.add_column("notes / errors")
    used: set[str] = set()
    errors: list = []
    n_failed = n_traj = n_steps = n_skipped = n_bad_rows = 0

    def total_rows(f: Path) -> int | None:
        try:
            return count_rows(f) if f.name.endswith((".parquet", ".jsonl", ".jsonl.gz")) or f.is_dir() else 1
        except RowsError:
            return None

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        for f in files:
            task = bar.add_task(f"importing {f.name}", total=total_rows(f))
            formats: Counter[str] = Counter()
            skipped: Counter[str] = Counter()
            notes: Counter[str] = Counter()
            tools: Counter[str] = Counter()
            n_file_traj = n_file_steps = n_file_errors = 0
            dest = None
            fh = None
            try:
                for r in iter_file(f, fmt):
                    bar.advance(task)
                    if r.format:
                        formats[r.format] += 1
                    if r.error is not None:
                        errors.append(r.error)
                        n_file_errors += 1
                        continue
                    for imp in r.imported:
                        if fh is None:
                            dest = _out_name(out, stem_of(f), used)
                            fh = dest.open("w")
                        fh.write(imp.trajectory.model_dump_json() + "\n")
                        n_file_traj += 1
                        n_file_steps += len(imp.trajectory.steps)
                        tools["recorded" if imp.trajectory.tools else "default"] += 1
                        skipped.update(s.reason for s in imp.skipped)
                        for key, v in imp.notes.items():
                            notes["non-agent events ignored" if key.startswith("ignored") else key] += v
            finally:
                if fh is not None:
                    fh.close()
                bar.remove_task(task)
            n_traj += n_file_traj
            n_steps += n_file_steps
            n_skipped += sum(skipped.values())
            n_bad_rows += n_file_errors
            n_failed += bool(n_file_errors)
            msgs = [f"{v} {k}" for k, v in notes.items()]
            msgs += [f"[red]{n_file_errors} failed row(s), see below[/red]"] if n_file_errors else []
            table.add_row(
                f.name,
                ", ".join(formats) or "?",
                str(n_file_traj),
                str(n_file_steps),
                ", ".join(f"{v} {k}" for k, v in tools.items()) or "-",
                "\n".join(f"{v} {k}" for k, v in skipped.items()) or "-",
                "\n".join(msgs) or "-",
            )
    console.print(table)
    for e in errors:
        console.print(f"[red]error:[/red] {e}", markup=True, highlight=False, soft_wrap=True)
    console.print(
        f"{n_traj} trajectories, {n_steps} steps, {n_skipped} skipped steps written to {out}; "
        f"{n_bad_rows} row(s) in {n_failed} file(s) failed"
    )
    if n_failed:
        raise typer.Exit(1)


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
    import time

    from datasets.utils.logging import disable_progress_bar
    from rich.console import Console
    from rich.table import Table

    from trajectories.stepwise import build_dataset, read_build_report
    from trajectories.tokens import TokenizerNotFound

    disable_progress_bar()  # the summary table says what was built
    start = time.perf_counter()
    console = Console()
    try:
        with console.status("expanding trajectories into step-wise instances ...") as status:

            def progress(n: int) -> None:
                status.update(f"expanding trajectories into step-wise instances ... {n} shard(s) done")

            dd = build_dataset(
                trajectories,
                out,
                context_steps=context_steps,
                max_obs_tokens=max_obs_tokens,
                tokenizer=tokenizer,
                val_fraction=val_fraction,
                seed=seed,
                num_proc=num_proc,
                on_error="skip",
                progress=progress,
            )
    except (TokenizerNotFound, FileNotFoundError, FileExistsError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    report = read_build_report(out)
    for name, ds in dd.items():
        if jsonl:
            ds.to_json(str(out / f"{name}.jsonl"), lines=True)
        if parquet:
            ds.to_parquet(str(out / f"{name}.parquet"))
    table = Table(title=f"srl data build -> {out} ({time.perf_counter() - start:.1f} s)")
    for col in ("split", "instances", "trajectories", "tools"):
        table.add_column(col)
    for name, ds in dd.items():
        tools = Counter(ds["tool"])
        table.add_row(
            name,
            str(len(ds)),
            str(len(set(ds["trajectory_id"]))),
            ", ".join(f"{k} {v}" for k, v in tools.most_common(6)),
        )
    console.print(table)
    sets = report["tool_sets"]
    console.print(
        f"{report['rows']} rows -> {report['trajectories']} trajectories -> "
        f"{sum(report['splits'].values())} instances; formats: "
        + ", ".join(f"{k} {v}" for k, v in report["formats"].items())
        + f"; tool sets: {sets['recorded']} as recorded by the source, {sets['default']} srl-swe's default "
        "(the source recorded none)"
        + (
            "; skipped steps: " + ", ".join(f"{k} {v}" for k, v in report["skipped_steps"].items())
            if report["skipped_steps"]
            else ""
        )
    )
    for e in report["errors"]:
        console.print(f"[red]error:[/red] {e}", markup=True, highlight=False, soft_wrap=True)
    if report["errors"]:
        console.print(f"{len(report['errors'])} row(s) failed and were skipped")
        raise typer.Exit(1)


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
