"""Chat rows whose actions are written inside the assistant text, not as ``tool_calls``.

- ``swe-smith``: SWE-bench/SWE-smith-trajectories rows ``{messages, instance_id, resolved, model,
  traj_id, patch}`` (the SRL paper's expert data). Splits ``tool`` and ``xml``: each action is one XML
  function call in the assistant text (``<function=bash>`` / ``<parameter=command>`` ... ``</function>``);
  split ``ticks``: one fenced command block (SWE-agent's thought/action format, a raw command line).
  Observations are the next ``user`` message, ``OBSERVATION:`` prefix removed.
- ``openhands-text``: OpenHands' text format (e.g. SWE-Play rows ``{messages, category, source}``):
  the same XML calls, observations in ``EXECUTION RESULT of [tool]:`` user turns.

The tools are those of the system prompt's function list (``---- BEGIN FUNCTION #1: bash ----``) or
SWE-agent command docs. An assistant turn with no call or several calls is a skipped step (SWE-agent
and OpenHands reject it; the next user turn is their error message). The raw call text is kept in
``raw_action`` when it differs from the canonical form.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from trajectories.actions import ActionParseError, find_actions, parse_action, render_action
from trajectories.importers.base import (
    Ctx,
    Imported,
    Node,
    SkippedStep,
    content_text,
    extract_issue,
    trajectory_id,
)
from trajectories.importers.swe_agent import legacy_call
from trajectories.recorded_tools import from_command_docs, from_function_list
from trajectories.schema import Step, ToolCall, Trajectory
from trajectories.tools import BASH, infer_toolset

SWE_SMITH = "swe-smith"
OPENHANDS_TEXT = "openhands-text"
_OBS_PREFIX = re.compile(r"\A(?:OBSERVATION:[ \t]*\n?|EXECUTION RESULT of \[[^\]]*\]:[ \t]*\n?)")
_FENCE = re.compile(r"^```[^\n`]*\n(.*?)^```[ \t]*$", re.S | re.M)
_DISCUSSION = re.compile(r"\A\s*DISCUSSION\s*\n")


def _messages(data: Any) -> list | None:
    if isinstance(data, dict):
        m = data.get("messages")
        return m if isinstance(m, list) else None
    return data if isinstance(data, list) else None


def _text(content: Any) -> str:
    """Message content as text: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return ""


def _texts(messages: list, role: str) -> list[str]:
    return [_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == role]


def classify(data: Any) -> str | None:
    """``swe-smith`` / ``openhands-text`` when `data` is a message list (or a row holding one) whose
    actions are written in the assistant text; None otherwise."""
    messages = _messages(data)
    if not messages or not all(isinstance(m, dict) for m in messages):
        return None
    if any(m.get("tool_calls") for m in messages if m.get("role") == "assistant"):
        return None
    assistant = _texts(messages, "assistant")
    users = _texts(messages, "user")
    if any(u.startswith("EXECUTION RESULT of [") for u in users):
        return OPENHANDS_TEXT
    if any("<function=" in a for a in assistant):
        return SWE_SMITH
    system = "".join(_texts(messages, "system"))
    if (
        isinstance(data, dict)
        and ("traj_id" in data or "patch" in data)
        and "---- BEGIN FUNCTION #" not in system  # a function list: its calls are <function=...>
        and any(_FENCE.search(a) for a in assistant)
    ):
        return SWE_SMITH  # the `ticks` split
    return None


def _recorded_tools(system: str, ticks: bool):
    tools = from_function_list(system)
    if not tools and "docstring:" in system:
        tools = from_command_docs(system, legacy=ticks)
        if ticks and tools and not any(t.name == "bash" for t in tools):
            tools = [BASH, *tools]  # SWE-agent runs every other command line in bash
    return tools or None


@dataclass
class _Walk:
    """What the message walk collected."""

    ticks: bool  # actions are fenced command lines (SWE-agent's thought/action format), not XML calls
    system: str = ""
    problem: str = ""
    steps: list[Step] = field(default_factory=list)
    skipped: list[SkippedStep] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)
    pending: int | None = None  # index in `steps` of the action waiting for its output
    names: set[str] | None = None  # the recorded command names (ticks), once the system prompt names them


def load(data: Any, ctx: Ctx, stem: str, raw: bytes | str, fmt: str) -> list[Imported]:
    root = ctx.root(data)
    messages = root.req("messages", list) if isinstance(data, dict) else root.expect(list)
    ticks = not any("<function=" in a for a in _texts(messages.value, "assistant"))
    walk = _walk(messages.items(), ticks)
    if not walk.steps:
        what = "a fenced command block" if ticks else "exactly one <function=...> call"
        raise messages.fail(f"empty trajectory: no assistant message holds {what}")
    tools = _recorded_tools(walk.system, ticks)
    metadata: dict[str, Any] = {}
    if ticks:
        metadata["variant"] = "ticks"
    if tools is None:
        metadata["toolset"] = (
            "swe_agent_legacy" if ticks else infer_toolset({s.action.name for s in walk.steps})
        )
    instance_id, tid, final_patch, resolved = stem, None, None, None
    if isinstance(data, dict):
        instance_id, tid, final_patch, resolved = _record_fields(root, stem, metadata)
    metadata = {k: v for k, v in metadata.items() if v is not None}
    traj = Trajectory(
        instance_id=instance_id,
        source_format=fmt,
        trajectory_id=tid or trajectory_id(instance_id, fmt, raw),
        problem_statement=walk.problem,
        steps=walk.steps,
        final_patch=final_patch,
        resolved=resolved,
        tools=tools,
        metadata=metadata,
    )
    return [Imported(traj, walk.skipped, walk.notes)]


def _walk(items: list[Node], ticks: bool) -> _Walk:
    """The first user message is the task, each assistant message an action or a skipped step, the next
    user message its output."""
    walk = _Walk(ticks)
    for i, msg in enumerate(items):
        role = msg.expect(dict).req("role", str).value
        content = content_text(msg.opt("content"))
        if role == "system":
            walk.system = walk.system or content
            continue
        if role == "user":
            if walk.pending is not None:
                observation = _OBS_PREFIX.sub("", content, 1)
                walk.steps[walk.pending] = walk.steps[walk.pending].model_copy(
                    update={"observation": observation}
                )
                walk.pending = None
            elif not walk.problem and not walk.steps:
                walk.problem = extract_issue(content)
            continue
        if role != "assistant":
            raise msg.fail(f"expected role 'system', 'user' or 'assistant', got {role!r}", "role")
        walk.pending = None
        step = _ticks_step(walk, i, content) if ticks else _xml_step(walk, i, content)
        if step is not None:
            walk.steps.append(step)
            walk.pending = len(walk.steps) - 1
    return walk


def _ticks_step(walk: _Walk, i: int, content: str) -> Step | None:
    """The last fenced command block of an assistant message as a step (None: skipped, counted)."""
    blocks = list(_FENCE.finditer(content))
    if not blocks:
        walk.skipped.append(SkippedStep(i, "no_command", "no fenced command block"))
        return None
    block = blocks[-1]
    if walk.names is None:
        tools = _recorded_tools(walk.system, ticks=True)
        walk.names = {t.name for t in tools} if tools else None
    action = legacy_call(block.group(1).strip("\n"), walk.names)
    raw_text = block.group(1).strip("\n")
    thought = _DISCUSSION.sub("", content[: block.start()]).strip()
    return _step(thought, action, raw_text)


def _xml_step(walk: _Walk, i: int, content: str) -> Step | None:
    """The one ``<function=...>`` call of an assistant message as a step (None: skipped, counted)."""
    blocks = find_actions(content)
    if not blocks and content.count("<function=") == 1 and "</function>" not in content:
        # OpenHands stops generation at "</function": the closing tag is not in the text
        content = content.rstrip() + "\n</function>"
        blocks = find_actions(content)
        walk.notes["call closed at the stop sequence"] += 1
    if len(blocks) != 1:
        reason = "no_function_call" if not blocks else "several_function_calls"
        walk.skipped.append(SkippedStep(i, reason, f"{len(blocks)} <function=...> calls in message {i}"))
        return None
    block = blocks[0]
    try:
        action = parse_action(block.group(0))
    except (ActionParseError, ValueError) as exc:
        walk.skipped.append(SkippedStep(i, "format_error", str(exc)[:200]))
        return None
    after = content[block.end() :].strip()
    thought = content[: block.start()].strip() + (f"\n\n{after}" if after else "")
    return _step(thought, action, block.group(0))


def _step(thought: str, action: ToolCall, raw_text: str) -> Step:
    return Step(
        thought=thought,
        action=action,
        raw_action=raw_text if raw_text != render_action(action) else None,
    )


def _record_fields(
    record: Node, stem: str, metadata: dict[str, Any]
) -> tuple[str, str | None, str | None, bool | None]:
    """(instance id, recorded trajectory id, final patch, resolved) of a data-set row; its model,
    category and source go into `metadata`."""
    instance_id = record.text("instance_id") or record.text("source") or stem
    tid = record.text("traj_id") or None
    for key in ("model", "category", "source"):
        if record.text(key):
            metadata[key] = record.text(key)
    final_patch = record.text("patch") or None
    r = record.opt("resolved", bool)
    return instance_id, tid, final_patch, r.value if r is not None else None


def missing(data: Any) -> str:
    """What keeps a message-list row from importing, for the 'looks like ...' error."""
    messages = _messages(data) or []
    for i, m in enumerate(messages):
        if isinstance(m, dict) and m.get("role") == "assistant":
            text = _texts([m], "assistant")[0]
            if "<function=" not in text:
                return f"message {i} holds no <function=...> call and no tool_calls"
    return "no assistant message"
