"""`srl task ...` commands."""

from __future__ import annotations

import typer

task_app = typer.Typer(no_args_is_help=True)
