"""Rewards: the SRL step reward (action similarity to the expert's) and the RLVR outcome reward.

Pure functions of plain data. `step_reward`:

1. parse the answer with `parse_answer`: a ``<think>...</think>`` block, then exactly one action;
   anything else (no think block, no action, two actions, trailing text) -> **-1.0**;
2. otherwise the `SequenceMatcher` ratio ``2*M/T`` between ``render_action(parsed)`` (so formatting
   noise such as blank lines around values does not count) and the expert's canonical action text.

Modes:

- ``difflib``: the standard library's `difflib.SequenceMatcher` (the definition of the reward).
- ``exact`` (default): `cydifflib`, a C++ port of the same algorithm -- identical values, faster.
- ``fast``: rapidfuzz ``Indel.normalized_similarity``, i.e. ``2*LCS/T`` with the longest common
  *subsequence* instead of difflib's greedy matching blocks. It is never below the difflib value and
  usually close to it; `benchmarks/bench_scoring.py` measures the difference on real actions.

``autojunk=False`` by default: difflib's autojunk heuristic treats every character that occurs in
more than 1% of a sequence of 200+ characters as junk, and for code nearly every common character
(space, newline, ``e``, ``(``) qualifies. On actions longer than 200 characters -- most edits -- the
matcher can only anchor matches on rare characters and the ratio collapses: a 583-character heredoc
action and the same action with its 20 lines indented by four spaces score 0.936 without autojunk and
0.173 with it. On the fixture action pairs with an action over 200 characters autojunk lowers the ratio
by 0.044 on average and by up to 0.43 (`benchmarks/bench_scoring.py`), so the reward would stop
measuring similarity exactly where it matters. Pass ``autojunk=True`` only to
reproduce numbers computed with the stdlib default.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, Literal

from trajectories.actions import ActionParseError, parse_answer, render_action

Mode = Literal["difflib", "exact", "fast"]
FORMAT_ERROR_REWARD = -1.0


def similarity(a: str, b: str, *, mode: Mode = "exact", autojunk: bool = False) -> float:
    """The similarity in [0, 1] of two action texts under `mode` (see the module docstring)."""
    if mode == "difflib":
        return difflib.SequenceMatcher(None, a, b, autojunk=autojunk).ratio()
    if mode == "exact":
        import cydifflib

        return cydifflib.SequenceMatcher(None, a, b, autojunk=autojunk).ratio()
    if mode == "fast":
        from rapidfuzz.distance import Indel

        return Indel.normalized_similarity(a, b)
    raise ValueError(f"unknown mode {mode!r}; expected 'difflib', 'exact' or 'fast'")


def step_reward(pred_text: str, expert_action: str, *, mode: Mode = "exact", autojunk: bool = False) -> float:
    """-1.0 for an unparsable answer, else the similarity of its action to the expert's canonical text."""
    try:
        _, call = parse_answer(pred_text)
    except (ActionParseError, ValueError):
        return FORMAT_ERROR_REWARD
    return similarity(render_action(call), expert_action, mode=mode, autojunk=autojunk)


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or a chat list whose last assistant message is used."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, Sequence):
        for msg in reversed(completion):
            if isinstance(msg, dict) and msg.get("role", "assistant") == "assistant":
                return str(msg.get("content") or "")
        return ""
    raise TypeError(
        f"a completion must be a string or a list of chat messages, got {type(completion).__name__}"
    )


def step_reward_func(
    completions: Sequence[Any], expert_action: Sequence[str], *, mode: Mode = "exact", **kwargs: Any
) -> list[float]:
    """TRL reward function: ``f(completions, **dataset_columns) -> list[float]``.

    `expert_action` is the data set column of that name; other columns arrive in `kwargs` and are
    ignored.
    """
    if len(completions) != len(expert_action):
        raise ValueError(f"{len(completions)} completions but {len(expert_action)} expert actions")
    return [
        step_reward(completion_text(c), e, mode=mode) for c, e in zip(completions, expert_action, strict=True)
    ]


def make_step_reward_func(mode: Mode = "exact", autojunk: bool = False):
    """`step_reward_func` bound to a mode, named ``step_reward_<mode>`` (TRL logs rewards by ``__name__``)."""

    def func(completions: Sequence[Any], expert_action: Sequence[str], **kwargs: Any) -> list[float]:
        if len(completions) != len(expert_action):
            raise ValueError(f"{len(completions)} completions but {len(expert_action)} expert actions")
        return [
            step_reward(completion_text(c), e, mode=mode, autojunk=autojunk)
            for c, e in zip(completions, expert_action, strict=True)
        ]

    func.__name__ = func.__qualname__ = f"step_reward_{mode}"
    return func


def outcome_reward(resolved: bool | None, format_error: bool = False, tamper: bool = False) -> float:
    """RLVR reward of one episode: -1.0 on a format error or a patch graded ``tamper`` (it tried to forge
    its grade), 1.0 resolved, 0.0 otherwise (or unknown)."""
    if format_error or tamper:
        return FORMAT_ERROR_REWARD
    return 1.0 if resolved else 0.0
