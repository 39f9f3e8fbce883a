"""Reward functions in TRL's form, ``f(completions, **columns) -> list[float]``.

The scoring itself lives in `trajectories.scoring` (pure functions of plain data, tested with literal
strings); here we only bind options and give TRL a stable function name to log rewards under.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RewardFunc = Callable[..., list[float]]


def make_step_reward(mode: str = "exact") -> RewardFunc:
    """The SRL step reward (similarity to the expert's action, -1 when unparsable) for TRL."""
    from trajectories.scoring import step_reward_func

    if mode == "exact":  # the default: harness's function itself
        return step_reward_func

    def step_reward(completions: list[Any], expert_action: list[str], **kwargs: Any) -> list[float]:
        return step_reward_func(completions, expert_action, mode=mode, **kwargs)

    return step_reward


def make_outcome_reward() -> RewardFunc:
    """The RLVR reward for TRL: `trajectories.scoring.outcome_reward` of each rollout's episode result.

    The rollout function (see `srl_agent.train.rlvr`) puts each episode's result in the column
    ``episode`` (via TRL's ``rollout_func`` extra fields): ``{"resolved": bool | None, "format_error": bool,
    "tamper": bool}``.
    """
    from trajectories.scoring import outcome_reward

    def outcome(completions: list[Any], episode: list[dict[str, Any]], **kwargs: Any) -> list[float]:
        return [
            outcome_reward(ep.get("resolved"), bool(ep.get("format_error")), bool(ep.get("tamper")))
            for ep in episode
        ]

    return outcome
