"""The demonstration trajectories shipped inside the package (see ``trajectories/data/README.md``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from trajectories.importers import load_trajectories
from trajectories.schema import Trajectory


def bundled_dir() -> Path:
    return Path(str(resources.files("trajectories") / "data"))


def bundled_trajectories() -> list[Trajectory]:
    """The 13 bundled trajectories (1 SWE-agent, 12 mini-swe-agent), imported."""
    return load_trajectories([bundled_dir()])
