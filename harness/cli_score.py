"""`srl score`."""

from __future__ import annotations


def score() -> None:
    """Score predicted actions against the expert's."""
    raise SystemExit("srl score: not built yet")
