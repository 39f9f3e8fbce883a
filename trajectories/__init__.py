"""Data: what a trajectory is, how to read one, step-wise SRL instances and their scoring."""

from trajectories.errors import SrlSweError

__all__ = ["SrlSweError"]
