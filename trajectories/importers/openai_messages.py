"""OpenAI-style chat messages with ``tool_calls``: a JSON list of messages, a JSON object
``{"instance_id"?, "messages", "submission"?, "resolved"?}``, or JSONL with one such object per line.

Each tool call of an assistant message is one step (the message content is the first call's thought);
its observation is the first later ``tool`` message whose ``tool_call_id`` (or SWE-agent's
``tool_call_ids``) matches, matched in order because some recorders reuse one id for several calls. An assistant message without tool calls is a skipped step. The toolset is the smallest named
one that holds every tool used (``custom`` otherwise).
"""

from __future__ import annotations

import json
from typing import Any

from trajectories.importers.base import (
    Ctx,
    Imported,
    Node,
    SkippedStep,
    content_text,
    extract_issue,
    trajectory_id,
)
from trajectories.importers.swe_agent import tool_call_to_action
from trajectories.recorded_tools import from_openai_tools
from trajectories.schema import Step, Trajectory
from trajectories.tools import infer_toolset

FORMAT = "openai"


def looks_like(data: Any) -> bool:
    """Chat messages where at least one assistant message carries ``tool_calls``."""
    messages = data.get("messages") if isinstance(data, dict) and "trajectory_format" not in data else data
    return (
        isinstance(messages, list)
        and bool(messages)
        and all(isinstance(m, dict) for m in messages)
        and "role" in messages[0]
        and any(m.get("role") == "assistant" and m.get("tool_calls") for m in messages)
    )


def load_messages(
    messages: Node, ctx: Ctx, instance_id: str, raw: bytes | str, record: Node | None
) -> Imported:
    items = messages.items()
    steps: list[Step] = []
    skipped: list[SkippedStep] = []
    pending: list[tuple[int, str]] = []  # (step index, tool call id) still waiting for their output
    problem = ""
    for i, msg in enumerate(items):
        role = msg.expect(dict).req("role", str).value
        if role == "user" and not problem:
            problem = extract_issue(content_text(msg.opt("content")))
        elif role == "tool":
            ids = [msg.text("tool_call_id")] if msg.has("tool_call_id") else []
            many = msg.opt("tool_call_ids", list)
            ids += [n.expect(str).value for n in many.items()] if many is not None else []
            # ids are matched in order: some recorders reuse one id for several calls
            match = next((p for p in pending if p[1] in ids), pending[0] if pending else None)
            if match is None:
                raise msg.fail("a tool message that answers no pending tool call")
            pending.remove(match)
            steps[match[0]] = steps[match[0]].model_copy(
                update={"observation": content_text(msg.opt("content"))}
            )
        if role != "assistant":
            continue
        thought = content_text(msg.opt("content")).strip()
        calls = msg.opt("tool_calls", list)
        if calls is None or not calls.value:
            skipped.append(SkippedStep(i, "no_tool_call", thought[:200]))
            continue
        for k, call in enumerate(calls.items()):
            call.expect(dict)
            pending.append((len(steps), call.text("id")))
            fn = call.value.get("function")
            raw = json.dumps(fn, ensure_ascii=False) if isinstance(fn, dict) else None  # the call as recorded
            steps.append(
                Step(thought=thought if k == 0 else "", action=tool_call_to_action(call), raw_action=raw)
            )
    if not steps:
        raise messages.fail("empty trajectory: no assistant message with a tool call")
    resolved = record.opt("resolved", bool) if record is not None else None
    final_patch = (record.text("submission") or record.text("patch") or None) if record is not None else None
    tools = None
    metadata: dict[str, Any] = {}
    if record is not None:
        test_result = record.opt("test_result", dict)  # SWE-Gym / OpenHands rows
        if final_patch is None and test_result is not None:
            final_patch = test_result.text("git_patch") or None
        tools = from_openai_tools(record.value.get("tools")) or None
        for key in ("run_id", "model"):
            if record.text(key):
                metadata[key] = record.text(key)
    metadata["toolset"] = infer_toolset({s.action.name for s in steps})
    traj = Trajectory(
        instance_id=instance_id,
        source_format=FORMAT,
        trajectory_id=trajectory_id(instance_id, FORMAT, raw, ctx.line),
        problem_statement=problem,
        steps=steps,
        final_patch=final_patch,
        exit_status=(record.text("exit_status") or None) if record is not None else None,
        resolved=resolved.value if resolved is not None else None,
        tools=tools,
        metadata=metadata,
    )
    return Imported(traj, skipped)


def load(data: Any, ctx: Ctx, stem: str, raw: bytes | str) -> list[Imported]:
    root = ctx.root(data)
    if isinstance(data, list):
        return [load_messages(root, ctx, stem, raw, None)]
    root.expect(dict)
    return [load_messages(root.req("messages", list), ctx, root.text("instance_id") or stem, raw, root)]
