"""`srl eval-steps`: how close a policy's actions are to the expert's on held-out steps.

For each step of a split, the policy answers the step prompt once (greedy by default); the answer is
scored with `trajectories.scoring.step_reward` against the expert action. Reported: mean step reward,
format-error rate (answers that are not ``<think>...</think>`` + exactly one action), per tool.
``backend="expert"`` replays the expert's own answers (a sanity check: reward 1, no format errors).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from srl_agent.train.config import EvalStepsConfig


class ToolScore(BaseModel):
    tool: str
    n: int
    mean_reward: float
    format_error_rate: float


class EvalReport(BaseModel):
    model: str
    split: str
    n: int
    mean_reward: float
    format_error_rate: float
    per_tool: list[ToolScore]
    seconds: float


def summarize(model: str, split: str, rows: list[dict[str, Any]], seconds: float) -> EvalReport:
    """Aggregate per-step results (``tool``, ``reward``, ``format_error``) into a report."""
    by_tool: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_tool[r["tool"]].append(r)

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs) if xs else 0.0

    per_tool = [
        ToolScore(
            tool=t,
            n=len(rs),
            mean_reward=mean([r["reward"] for r in rs]),
            format_error_rate=mean([float(r["format_error"]) for r in rs]),
        )
        for t, rs in sorted(by_tool.items(), key=lambda kv: -len(kv[1]))
    ]
    return EvalReport(
        model=model,
        split=split,
        n=len(rows),
        mean_reward=mean([r["reward"] for r in rows]),
        format_error_rate=mean([float(r["format_error"]) for r in rows]),
        per_tool=per_tool,
        seconds=seconds,
    )


def evaluate_steps(config: EvalStepsConfig, *, policy: Any = None, progress: bool = True) -> EvalReport:
    """Score `policy` (or one loaded from ``config.model`` / ``config.backend``) on a data set split.

    A policy loaded here is closed before returning (a vLLM engine's processes end with it)."""
    from srl_agent.models import set_offline
    from srl_agent.policy import load_policy
    from srl_agent.train.data import load_split

    set_offline()
    load_split(config.dataset, config.split)  # a bad data set fails before a model is loaded
    owned = None
    if policy is None and config.backend != "expert":
        policy = owned = load_policy(
            config.model, backend=config.backend, batch_size=config.batch_size, prefill=config.answer_prefill
        )
    try:
        return _evaluate(config, policy, progress)
    finally:
        if owned is not None and hasattr(owned, "close"):
            owned.close()


def _evaluate(config: EvalStepsConfig, policy: Any, progress: bool) -> EvalReport:
    import time

    from rich.progress import Progress

    from srl_agent.models import load_tokenizer
    from srl_agent.policy import ScriptedPolicy
    from srl_agent.prompts import fit_prompt, prompt_token_count
    from srl_agent.train.data import load_split
    from trajectories.actions import ActionParseError, parse_answer
    from trajectories.scoring import step_reward

    ds = load_split(config.dataset, config.split)
    if config.limit:
        ds = ds.select(range(min(config.limit, len(ds))))
    rows = ds.to_list()
    name = config.model
    if policy is None:  # backend "expert"
        policy = ScriptedPolicy(r["completion"][-1]["content"] for r in rows)
        name = "expert"
    tokenizer = getattr(policy, "tokenizer", None)
    if tokenizer is None and config.backend != "expert":
        tokenizer = load_tokenizer(config.model)
    prompts = []
    for r in rows:
        msgs = r["prompt"]
        if tokenizer is not None and prompt_token_count(tokenizer, msgs) > config.max_prompt_tokens:
            msgs = fit_prompt(tokenizer, msgs, config.max_prompt_tokens) or msgs
        prompts.append(msgs)

    results: list[dict[str, Any]] = []
    t0 = time.monotonic()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("eval-steps", total=len(rows))
        for start in range(0, len(rows), config.batch_size):
            chunk = prompts[start : start + config.batch_size]
            answers = policy.generate(
                chunk,
                temperature=config.temperature,
                max_new_tokens=config.max_new_tokens,
                seed=config.seed + start,
            )
            for row, answer in zip(rows[start : start + len(chunk)], answers, strict=True):
                try:
                    parse_answer(answer)
                    format_error = False
                except (ActionParseError, ValueError):
                    format_error = True
                results.append(
                    {
                        "instance_id": row.get("instance_id"),
                        "trajectory_id": row.get("trajectory_id"),
                        "step": row.get("step"),
                        "tool": row.get("tool") or "?",
                        "reward": step_reward(answer, row["expert_action"], mode=config.reward_mode),
                        "format_error": format_error,
                        "answer": answer,
                    }
                )
            bar.advance(task, len(chunk))
    report = summarize(name, config.split, results, time.monotonic() - t0)
    if config.output:
        config.output.parent.mkdir(parents=True, exist_ok=True)
        with Path(config.output).open("w") as fh:
            for r in results:
                fh.write(json.dumps(r) + "\n")
    return report
