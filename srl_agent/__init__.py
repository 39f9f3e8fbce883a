"""Learning: prompts, policies, SRL/SFT/RLVR training, the agent loop, the demo and the root CLI."""

__version__ = "0.1.0"
