"""What a task is and where tasks come from."""

from trajectories.errors import SrlSweError

__all__ = ["SrlSweError"]
