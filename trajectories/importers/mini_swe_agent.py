"""mini-swe-agent run files ``*.traj.json`` (``trajectory_format: "mini-swe-agent-1*"``) and the bare
message lists its newer versions save.

Each assistant message holds a THOUGHT and exactly one fenced ```` ```bash ```` (newer:
```` ```mswea_bash_command ````) block; the next user message is the command's output. In tool-call
mode an assistant message carries one ``tool_calls`` entry instead and its output is the next ``tool``
message. Decisions:

- An assistant message with zero or several bash blocks was rejected by mini-swe-agent (the next user
  message is a format error): it is a **skipped step** (reason ``format_error``), never an action.
- A command that timed out was still a well-formed action the expert chose: it is **kept** as a step
  whose observation is the timeout notice, and counted in the notes (``timeout``).
- The final ``echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached`` is
  mini-swe-agent's way of submitting, so when it is the last action it becomes ``submit()`` (raw
  command kept in ``raw_action``); this makes trajectories from every source end the same way and
  matches the ``bash_only`` toolset (bash + submit). Anywhere else it stays a ``bash`` step.
- ``resolved`` comes from ``<instance_id>.report.json`` beside the file when present.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
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
from trajectories.schema import Step, ToolCall, Trajectory

FORMAT = "mini-swe-agent"
SUBMIT_MARKER = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"
_BASH_BLOCK = re.compile(r"```(?:bash|mswea_bash_command)\s*\n(.*?)\n```", re.S)
_THOUGHT_PREFIX = re.compile(r"^\s*THOUGHT:\s*")
_TIMEOUT = re.compile(r"^The last command <command>.*?</command> timed out", re.S)


def looks_like(data: Any) -> bool:
    """A run file (``trajectory_format: mini-swe-agent-*``) or a bare message list in its text format."""
    if isinstance(data, dict):
        return str(data.get("trajectory_format", "")).startswith("mini-swe-agent")
    if not (isinstance(data, list) and data and all(isinstance(m, dict) for m in data)):
        return False
    texts = [m.get("content") for m in data if m.get("role") == "assistant"]
    return any(isinstance(t, str) and "```mswea_bash_command" in t for t in texts) or (
        any(isinstance(t, str) and "```bash" in t for t in texts)
        and any(
            isinstance(m.get("content"), str) and "<returncode>" in m["content"]
            for m in data
            if m.get("role") == "user"
        )
    )


def _thought(content: str, block: re.Match[str]) -> str:
    before = _THOUGHT_PREFIX.sub("", content[: block.start()]).strip()
    after = content[block.end() :].strip()
    return f"{before}\n\n{after}" if after else before


def read_report(path: Path) -> bool | None:
    """``resolved`` from a SWE-bench report beside a trajectory (flat, or keyed by instance id)."""
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if isinstance(report, dict) and len(report) == 1 and isinstance(next(iter(report.values())), dict):
        report = next(iter(report.values()))
    value = report.get("resolved") if isinstance(report, dict) else None
    return value if isinstance(value, bool) else None


@dataclass
class _Read:
    """What the message walk collected: the task text, the actions and their outputs, what was left out."""

    problem: str = ""
    actions: list[tuple[int, str, str]] = field(default_factory=list)  # (message index, thought, command)
    calls: dict[int, ToolCall] = field(default_factory=dict)  # tool-call mode: message index -> its call
    observations: dict[int, str] = field(default_factory=dict)
    skipped: list[SkippedStep] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)
    pending: int | None = None  # message index of the action waiting for its output


def load(data: Any, ctx: Ctx, stem: str, raw: bytes, report: Path | None = None) -> list[Imported]:
    root = ctx.root(data)
    if isinstance(data, list):  # a bare message list (mini-swe-agent v2 saves these too)
        messages, info, instance_id = root.items(), None, stem
    else:
        root.expect(dict)
        messages = root.req("messages", list).items()
        info = root.opt("info", dict)
        instance_id = root.text("instance_id") or stem
    read = _read_messages(messages)
    steps = _steps(read)
    if not steps:
        raise root.fail(
            "empty trajectory: no assistant message with exactly one bash block or tool call",
            "messages" if isinstance(data, dict) else None,
        )
    trajectory = Trajectory(
        instance_id=instance_id,
        source_format=FORMAT,
        trajectory_id=trajectory_id(instance_id, FORMAT, raw),
        problem_statement=read.problem,
        steps=steps,
        final_patch=(info.text("submission") or None) if info is not None else None,
        exit_status=(info.text("exit_status") or None) if info is not None else None,
        resolved=read_report(report) if report is not None and report.exists() else None,
        metadata=_metadata(info),
    )
    return [Imported(trajectory, read.skipped, read.notes)]


def _read_messages(messages: list[Node]) -> _Read:
    """Walk the messages: the first user message is the task, each assistant message an action (or a
    skipped step), the next user / tool message its output."""
    read = _Read()
    for i, msg in enumerate(messages):
        role = msg.expect(dict).req("role", str).value
        content = content_text(msg.opt("content"))
        if role == "system":
            continue
        if role == "tool":  # tool-call mode: the output of the pending call
            if read.pending is not None:
                read.observations[read.pending] = content
                read.pending = None
            continue
        if role == "user":
            _user_message(read, content)
            continue
        if role != "assistant":
            raise msg.fail(f"expected role 'system', 'user', 'assistant' or 'tool', got {role!r}", "role")
        _assistant_message(read, i, msg, content)
    return read


def _user_message(read: _Read, content: str) -> None:
    if not read.problem and not read.actions and not read.skipped:
        read.problem = extract_issue(content)
    elif read.pending is not None:
        read.observations[read.pending] = content
        if _TIMEOUT.match(content):
            read.notes["timed-out step kept"] += 1
        read.pending = None


def _assistant_message(read: _Read, i: int, msg: Node, content: str) -> None:
    """One assistant message: an action (one tool call, or one bash block) or a format error."""
    read.pending = None
    tcs = msg.opt("tool_calls", list)
    if tcs is not None and tcs.value:
        if len(tcs.value) != 1:
            read.skipped.append(
                SkippedStep(i, "format_error", f"{len(tcs.value)} tool calls in one response")
            )
            return
        call = tool_call_to_action(tcs.items()[0].expect(dict))
        read.calls[i] = call
        read.actions.append((i, content.strip(), call.arguments.get("command", "")))
        read.pending = i
        return
    blocks = list(_BASH_BLOCK.finditer(content))
    if len(blocks) != 1:
        read.skipped.append(SkippedStep(i, "format_error", f"{len(blocks)} bash blocks in one response"))
        return
    command = blocks[0].group(1).strip("\n")
    read.actions.append((i, _thought(content, blocks[0]), command))
    read.pending = i


def _steps(read: _Read) -> list[Step]:
    """The actions as steps; the last one becomes ``submit()`` when it is the submit echo."""
    steps: list[Step] = []
    for n, (i, thought, command) in enumerate(read.actions):
        is_last = n == len(read.actions) - 1
        if is_last and SUBMIT_MARKER in command:
            action, raw_action = ToolCall(name="submit"), command
            read.notes["final echo -> submit()"] += 1
        elif i in read.calls:
            action, raw_action = read.calls[i], None
        else:
            action, raw_action = ToolCall(name="bash", arguments={"command": command}), None
        steps.append(
            Step(
                thought=thought,
                action=action,
                observation=read.observations.get(i, ""),
                raw_action=raw_action,
            )
        )
    return steps


def _metadata(info: Node | None) -> dict[str, Any]:
    """Toolset, model, image and mini-swe-agent version from the run's ``info``."""
    metadata: dict[str, Any] = {"toolset": "bash_only"}
    if info is None:
        return metadata
    cfg = info.opt("config", dict)
    if cfg is not None:
        model = cfg.opt("model", dict)
        if model is not None and model.text("model_name"):
            metadata["model"] = model.text("model_name")
        env = cfg.opt("environment", dict)
        if env is not None and env.text("image"):
            metadata["image"] = env.text("image")
    if info.text("mini_version"):
        metadata["mini_version"] = info.text("mini_version")
    return metadata
