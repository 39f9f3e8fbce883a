"""`srl doctor`, `srl image ...`, `srl sandbox ...`."""

from __future__ import annotations

import typer

image_app = typer.Typer(no_args_is_help=True)
sandbox_app = typer.Typer(no_args_is_help=True)


def doctor() -> None:
    """Check what is ready."""
