"""nebius/SWE-agent-trajectories rows: SWE-agent 0.x runs flattened into one row each.

``{instance_id, model_name, target, trajectory: [{role: system/user/ai, text, system_prompt, ...}],
exit_status, generated_patch, eval_logs}``. Each ``ai`` turn is a discussion and one fenced command
(the last fenced block, as SWE-agent's parser takes it); the next ``user`` turn is its output. The
command line becomes a ToolCall as in SWE-agent's old ``.traj`` layout (`swe_agent.legacy_call`), with
the command names of the system prompt's ``COMMANDS:`` docs (those docs are the trajectory's tools).
``target`` is the resolved flag, ``generated_patch`` the final patch.
"""

from __future__ import annotations

import re
from typing import Any

from trajectories.importers.base import Ctx, Imported, SkippedStep, extract_issue, trajectory_id
from trajectories.importers.swe_agent import legacy_call, plain_command
from trajectories.recorded_tools import from_command_docs
from trajectories.schema import Step, Trajectory
from trajectories.tools import BASH

FORMAT = "nebius"
_FENCE = re.compile(r"^```[^\n`]*\n(.*?)^```[ \t]*$", re.S | re.M)
_DISCUSSION = re.compile(r"\A\s*DISCUSSION\s*\n")


def looks_like(data: Any) -> bool:
    if not isinstance(data, dict) or not isinstance(data.get("trajectory"), list):
        return False
    turns = data["trajectory"]
    return bool(turns) and isinstance(turns[0], dict) and "text" in turns[0] and "role" in turns[0]


def load(data: Any, ctx: Ctx, stem: str, raw: bytes | str) -> list[Imported]:
    root = ctx.root(data).expect(dict)
    turns = root.req("trajectory", list).items()
    system = ""
    for t in turns:
        if t.expect(dict).text("role") == "system":
            system = t.text("system_prompt") or t.text("text")
            break
    tools = from_command_docs(system, legacy=True) or None
    if tools and not any(t.name == "bash" for t in tools):
        tools = [BASH, *tools]  # "you can also use the following commands" besides any bash command
    names = {t.name for t in tools} if tools else None
    problem = ""
    steps: list[Step] = []
    skipped: list[SkippedStep] = []
    pending: int | None = None
    for i, turn in enumerate(turns):
        role = turn.req("role", str).value
        text = turn.text("text")
        if role == "system":
            continue
        if role == "user":
            if pending is not None:
                steps[pending] = steps[pending].model_copy(update={"observation": text})
                pending = None
            elif not problem and not steps:
                problem = extract_issue(text)
            continue
        if role != "ai":
            raise turn.fail(f"expected role 'system', 'user' or 'ai', got {role!r}", "role")
        pending = None
        blocks = list(_FENCE.finditer(text))
        if not blocks:
            skipped.append(SkippedStep(i, "no_command", "no fenced command block"))
            continue
        command = blocks[-1].group(1).strip("\n")
        action = legacy_call(command, names)
        steps.append(
            Step(
                thought=_DISCUSSION.sub("", text[: blocks[-1].start()]).strip(),
                action=action,
                raw_action=command if command != plain_command(action) else None,
            )
        )
        pending = len(steps) - 1
    if not steps:
        raise root.fail("empty trajectory: no 'ai' turn holds a fenced command block", "trajectory")
    instance_id = root.text("instance_id") or stem
    target = root.opt("target", bool)
    metadata: dict[str, Any] = {"toolset": "swe_agent_legacy"} if tools is None else {}
    if root.text("model_name"):
        metadata["model"] = root.text("model_name")
    traj = Trajectory(
        instance_id=instance_id,
        source_format=FORMAT,
        trajectory_id=trajectory_id(instance_id, FORMAT, raw),
        problem_statement=problem,
        steps=steps,
        final_patch=root.text("generated_patch") or None,
        exit_status=root.text("exit_status") or None,
        resolved=target.value if target is not None else None,
        tools=tools,
        metadata=metadata,
    )
    return [Imported(traj, skipped)]
