"""`srl doctor`, `srl image ...`, `srl sandbox ...`."""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import sys
import time

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import base_image as base
from harness.docker_env import DockerUnavailable, get_client, state_dir
from harness.interrupt import sigterm_as_interrupt
from harness.sandbox import Sandbox, SandboxConfig, SandboxError, gc

console = Console(stderr=True)
image_app = typer.Typer(no_args_is_help=True)
sandbox_app = typer.Typer(no_args_is_help=True)

EXTRAS = {
    "train": ["torch", "transformers", "trl", "peft", "accelerate", "datasets"],
    "vllm": ["vllm"],
    "ray": ["ray"],
}


def doctor(
    fix: bool = typer.Option(False, "--fix", help="Also build what is missing (the base image)."),
    distro: str = typer.Option("bookworm", help="Debian release of the base image."),
) -> None:
    """Check Docker (starting dockerd where possible), the base image, disk space and the optional extras."""
    table = Table(title="srl doctor")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail / what to do")
    can_run = True
    client = None
    t0 = time.monotonic()
    try:
        client = get_client()
        ver = client.version()
        table.add_row(
            "docker daemon", "[green]ready[/]", f"server {ver.get('Version')} ({time.monotonic() - t0:.1f} s)"
        )
    except DockerUnavailable as exc:
        can_run = False
        table.add_row("docker daemon", "[red]missing[/]", escape(str(exc)))
    if client is not None:
        tag = base.default_tag(distro)
        rhash = base.recipe_hash(distro)
        if base.find_image(client, tag, rhash) is None and fix:
            try:
                with console.status(f"building {tag} (about a minute)"):
                    base.ensure_base_image(client, distro=distro, log=lambda m: console.log(m))
            except base.BaseImageError as exc:
                table.add_row("base image", "[red]failed[/]", str(exc))
        found = base.find_image(client, tag, rhash)
        if found:
            table.add_row("base image", "[green]ready[/]", f"{tag} ({found[7:19]})")
        else:
            can_run = False
            table.add_row(
                "base image", "[red]missing[/]", "build it: `srl image base` (or `srl doctor --fix`)"
            )
    sd = state_dir()
    probe = sd if sd.exists() else sd.parent if sd.parent.exists() else "/"
    free_gb = shutil.disk_usage(probe).free / 1e9
    table.add_row(
        "disk space",
        "[green]ok[/]" if free_gb >= 10 else "[yellow]low[/]",
        f"{free_gb:.0f} GB free at {probe}" + ("" if free_gb >= 10 else "; images need ~5 GB"),
    )
    for extra, mods in EXTRAS.items():
        missing = [m for m in mods if importlib.util.find_spec(m) is None]
        if missing:
            table.add_row(
                escape(f"extra [{extra}]"),
                "[yellow]not installed[/]",
                escape(f"pip install 'srl-swe[{extra}]' (missing: {', '.join(missing)})"),
            )
        else:
            table.add_row(escape(f"extra [{extra}]"), "[green]installed[/]", "")
    Console().print(table)
    if not can_run:
        console.print("[red]Sandboxes cannot run yet[/]: fix the rows marked red above.")
        raise typer.Exit(1)
    console.print("[green]Sandboxes can run.[/]")


@image_app.command("base")
def image_base(
    distro: str = typer.Option("bookworm", help="Debian release for debootstrap."),
    from_image: str = typer.Option(
        None, "--from", help="Derive the base from a local registry image instead."
    ),
    rebuild: bool = typer.Option(False, help="Build even when an image with the same recipe exists."),
    tag: str = typer.Option(None, help="Tag to give the image (default srl-base:<distro>)."),
) -> None:
    """Build the base image offline (debootstrap from the configured Debian mirror) or from --from IMAGE."""
    t0 = time.monotonic()
    try:
        client = get_client()
        with console.status("building the base image"):
            out = base.ensure_base_image(
                client,
                distro=distro,
                from_image=from_image,
                rebuild=rebuild,
                tag=tag,
                log=lambda m: console.log(m),
            )
    except (DockerUnavailable, base.BaseImageError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    typer.echo(f"{out} ready in {time.monotonic() - t0:.2f} s")


@sandbox_app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sandbox_exec(
    ctx: typer.Context,
    image: str = typer.Option(None, help="Image to start (default: the base image)."),
    timeout: float = typer.Option(60.0, help="Wall-clock limit for the command, seconds."),
    memory: str = typer.Option("1g", help="Memory limit, e.g. 256m, 2g."),
    cpus: float = typer.Option(1.0, help="CPU limit."),
    pids: int = typer.Option(512, help="Process limit."),
    network: bool = typer.Option(False, help="Allow network (default: none)."),
) -> None:
    """Run one command in a fresh sandbox and exit with its exit code: srl sandbox exec -- CMD..."""
    args = list(ctx.args)
    if not args:
        console.print("[red]error:[/] give a command after --, e.g. `srl sandbox exec -- uname -a`")
        raise typer.Exit(2)
    command = args[0] if len(args) == 1 else shlex.join(args)
    sigterm_as_interrupt()
    cfg = SandboxConfig(
        image=image or base.default_tag(),
        timeout=timeout,
        memory=memory,
        cpus=cpus,
        pids_limit=pids,
        network=network,
    )
    try:
        with Sandbox(cfg) as sb:
            res = sb.exec(command)
    except (DockerUnavailable, SandboxError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(125) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; the sandbox was removed[/]")
        raise typer.Exit(130) from None
    sys.stdout.write(res.output)
    sys.stdout.flush()
    if res.limit:
        console.print(f"[yellow]limit hit: {res.limit}[/]" + (" (output truncated)" if res.truncated else ""))
    raise typer.Exit(res.exit_code if res.exit_code >= 0 else 124)


@sandbox_app.command("gc")
def sandbox_gc(
    all_: bool = typer.Option(
        False, "--all", help="Also remove containers whose owner process is still running."
    ),
) -> None:
    """Remove leftover containers labelled srl-swe (those whose owner process has ended)."""
    try:
        n = gc(all=all_)
    except DockerUnavailable as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    typer.echo(f"removed {n} container(s)")


@image_app.command("prune")
def image_prune(
    tasks: list[str] = typer.Option(
        None, "--tasks", "-t", help="Task source(s) whose images are kept (repeatable; default: examples)."
    ),
    repos: str = typer.Option(
        None, "--repos", help="Repos directory for owner/name tasks (as in `srl task`)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
) -> None:
    """Remove env/instance images that no known task needs (known = the given task sources)."""
    from pathlib import Path

    from harness.cli_task import load_for_cli
    from harness.images import prune_images

    repos_dir = Path(repos) if repos else None
    specs = [s for source in (tasks or [None]) for s in load_for_cli(source, repos_dir, quiet=True).tasks]
    try:
        removed = prune_images(specs, dry_run=dry_run)
    except DockerUnavailable as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    for tag in removed:
        typer.echo(("would remove " if dry_run else "removed ") + tag)
    typer.echo(
        f"{len(removed)} image(s) {'to remove' if dry_run else 'removed'}; kept those of {len(specs)} task(s)"
    )
