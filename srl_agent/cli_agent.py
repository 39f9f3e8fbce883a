"""Commands of the learning layer: train, eval-steps, run, demo."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Mount the learning commands on the root app."""
