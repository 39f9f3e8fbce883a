"""`srl evaluate`."""

from __future__ import annotations


def evaluate() -> None:
    """Grade patches against their tasks' tests."""
    raise SystemExit("srl evaluate: not built yet")
