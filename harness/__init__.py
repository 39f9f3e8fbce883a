"""Everything that runs: Docker bootstrap, images, sandboxes, in-sandbox tools, replay, grading."""

from trajectories.errors import SrlSweError

__all__ = ["SrlSweError"]
