"""`srl traj ...` and `srl data ...` commands."""

from __future__ import annotations

import typer

traj_app = typer.Typer(no_args_is_help=True)
data_app = typer.Typer(no_args_is_help=True)
