"""`srl demo`: the main job on the bundled defaults."""

from __future__ import annotations

import typer
from rich.console import Console

from harness.base_image import ensure_base_image
from harness.docker_env import DockerUnavailable, get_client
from harness.sandbox import Sandbox, SandboxConfig

console = Console()


def demo() -> None:
    """Run the end-to-end demo on the bundled defaults."""
    try:
        client = get_client()
        image = ensure_base_image(client, log=console.log)
        with Sandbox(SandboxConfig(image=image, timeout=30), client=client) as sb:
            res = sb.exec("python3 -c 'import sys; print(sys.version.split()[0])'; git --version")
    except DockerUnavailable as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"sandbox smoke run: exit {res.exit_code} in {res.duration*1000:.1f} ms\n{res.output}")
