"""Learning: prompts, policies, SRL/SFT/RLVR training, the agent loop, the demo and the root CLI."""

from trajectories.errors import SrlSweError

__all__ = ["SrlSweError", "__version__"]

__version__ = "0.1.0"
