"""SWE-agent ``.traj`` files, both layouts.

- Old layout (no ``replay_config``, no tool calls): each ``trajectory[i].action`` is a raw command line.
  SWE-agent commands (``edit 1:1\\n...\\nend_of_edit``, ``open "x" 10``, ``create f``, ``submit``, ...)
  become a ToolCall named after the command with one argument ``args`` holding the raw text after the
  command name; any other command line becomes ``bash(command=...)``. Toolset ``swe_agent_legacy``.
- New layout (function calling): the assistant messages of ``history`` carry OpenAI ``tool_calls``;
  the i-th non-demonstration tool call is step i. JSON arguments become text (numbers as their JSON
  text), in the tool's declared parameter order. The raw command line is kept as ``raw_action``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from trajectories.importers.base import (
    Ctx,
    Imported,
    Node,
    content_text,
    extract_issue,
    trajectory_id,
)
from trajectories.recorded_tools import from_command_docs
from trajectories.schema import Step, ToolCall, ToolSpec, Trajectory
from trajectories.tools import BASH, LEGACY_COMMANDS, canonical_call, infer_toolset

FORMAT = "swe-agent"
_FIRST_WORD = re.compile(r"\S+")


def looks_like(data: Any) -> bool:
    return isinstance(data, dict) and "trajectory" in data and ("history" in data or "info" in data)


def legacy_call(raw: str, commands: set[str] | frozenset[str] | None = None) -> ToolCall:
    """A raw SWE-agent command line as a ToolCall (see the module docstring); `commands` are the
    command names the run declared (default: SWE-agent's windowed tools and ``submit``)."""
    text = raw[:-1] if raw.endswith("\n") else raw
    text = text.lstrip()
    m = _FIRST_WORD.match(text)
    names = LEGACY_COMMANDS if commands is None else (set(commands) - {"bash"})
    if m and m.group(0) in names:
        rest = text[m.end() :].lstrip(" \t")
        return ToolCall(name=m.group(0), arguments={"args": rest} if rest else {})
    return ToolCall(name="bash", arguments={"command": text})


def _tool_call_args(call: Node) -> tuple[str, dict[str, Any]]:
    fn = call.req("function", dict)
    name = fn.req("name", str).value
    raw = fn.opt("arguments", (str, dict))
    if raw is None:
        return name, {}
    if isinstance(raw.value, dict):
        return name, raw.value
    try:
        args = json.loads(raw.value) if raw.value.strip() else {}
    except json.JSONDecodeError as exc:
        raise raw.fail(
            f"expected a JSON object string, got invalid JSON ({exc.msg} at char {exc.pos})"
        ) from None
    if not isinstance(args, dict):
        raise raw.fail(f"expected a JSON object string, got JSON {type(args).__name__}")
    return name, args


def tool_call_to_action(call: Node) -> ToolCall:
    name, args = _tool_call_args(call)
    try:
        return canonical_call(name, args)
    except ValueError as exc:
        raise call.fail(f"invalid tool call {name!r}: {exc}") from None


def _problem_statement(root: Node, history: list[Node]) -> str:
    rc = _replay_config(root)
    if rc is not None:
        ps = rc.opt("problem_statement", dict)
        if ps is not None and ps.text("text"):
            return ps.text("text")
    for msg in history:
        if msg.text("role") == "user" and not msg.value.get("is_demo"):
            return extract_issue(content_text(msg.opt("content")))
    return ""


def _replay_config(root: Node) -> Node | None:
    rc = root.opt("replay_config", (dict, str))
    if rc is None or isinstance(rc.value, dict):
        return rc
    try:
        return Node(json.loads(rc.value), rc.path, rc.ctx).expect(dict)
    except json.JSONDecodeError as exc:
        raise rc.fail(f"expected a JSON object (or its JSON text), got invalid JSON: {exc.msg}") from None


def load(data: Any, ctx: Ctx, stem: str, raw: bytes) -> list[Imported]:
    root = ctx.root(data).expect(dict)
    steps_in = root.req("trajectory", list).items()
    history = root.opt("history", list)
    history_items = history.items() if history is not None else []
    info = root.opt("info", dict)
    rc = _replay_config(root)

    calls = _history_calls(history_items)
    layout = "function_calling" if calls else "old"
    notes = _length_notes(len(calls), len(steps_in))
    tools = _recorded_tools(rc, legacy=layout == "old")
    names = {t.name for t in tools} if tools else None
    steps = [
        _step(node, calls[i] if i < len(calls) else None, bool(calls), tools, names)
        for i, node in enumerate(steps_in)
    ]
    if not steps:
        raise root.fail("empty trajectory: expected at least one step", "trajectory")

    instance_id, metadata = _run_metadata(rc, stem, layout)
    metadata["toolset"] = (  # the closest named toolset (the prompt uses `tools` when recorded)
        "swe_agent_legacy" if layout == "old" else infer_toolset({s.action.name for s in steps})
    )
    if info is not None and info.opt("model_stats", dict) is not None:
        metadata["model_stats"] = info.value["model_stats"]

    traj = Trajectory(
        instance_id=instance_id,
        source_format=FORMAT,
        trajectory_id=trajectory_id(instance_id, FORMAT, raw),
        problem_statement=_problem_statement(root, history_items),
        steps=steps,
        final_patch=info.text("submission") or None if info is not None else None,
        exit_status=info.text("exit_status") or None if info is not None else None,
        tools=tools,
        metadata=metadata,
    )
    return [Imported(traj, notes=notes)]


def _history_calls(history: list[Node]) -> list[Node]:
    """The assistant messages of ``history`` that carry tool calls (demonstrations left out)."""
    return [
        m
        for m in history
        if m.expect(dict).text("role") == "assistant"
        and not m.value.get("is_demo")
        and m.has("tool_calls")
        and m.value["tool_calls"]
    ]


def _length_notes(n_calls: int, n_steps: int) -> Counter[str]:
    """A note when the history's tool calls and the trajectory's steps differ in number."""
    notes: Counter[str] = Counter()
    if n_calls and n_calls != n_steps:
        # a run cut short records its last step(s) in only one of the two lists: use what is there
        if n_calls < n_steps:
            notes[
                f"{n_steps - n_calls} trajectory step(s) without a history tool call: read from the action text"
            ] += 1
        else:
            notes[f"{n_calls - n_steps} history tool call(s) without a trajectory step: left out"] += 1
    return notes


def _step(
    node: Node,
    call: Node | None,
    function_calling: bool,
    tools: list[ToolSpec] | None,
    names: set[str] | None,
) -> Step:
    """One ``trajectory`` entry as a Step; its action from `call` (the matching history message with
    tool calls) when there is one, else from its action text."""
    node.expect(dict)
    raw_action = node.req("action", str).value
    if call is not None:
        tcs = call.req("tool_calls", list).items()
        if len(tcs) != 1:
            raise call.fail(f"expected exactly one tool call per step, got {len(tcs)}", "tool_calls")
        action = tool_call_to_action(tcs[0].expect(dict))
    elif function_calling:
        action = _text_call(raw_action, tools)
    else:
        action = legacy_call(raw_action, names)
    et = node.opt("execution_time", (int, float))
    return Step(
        thought=node.text("thought").strip(),
        action=action,
        observation=node.text("observation"),
        raw_action=raw_action if raw_action != plain_command(action) else None,
        execution_time=float(et.value) if et is not None else None,
    )


def _run_metadata(rc: Node | None, stem: str, layout: str) -> tuple[str, dict[str, Any]]:
    """(instance id, metadata: layout, image, base commit) from the run's ``replay_config``."""
    instance_id = stem
    metadata: dict[str, Any] = {"layout": layout}
    if rc is None:
        return instance_id, metadata
    ps = rc.opt("problem_statement", dict)
    if ps is not None and ps.text("id"):
        instance_id = ps.text("id")
    env = rc.opt("env", dict)
    if env is not None:
        dep = env.opt("deployment", dict)
        if dep is not None and dep.text("image"):
            metadata["image"] = dep.text("image")
        repo = env.opt("repo", dict)
        if repo is not None and repo.text("base_commit"):
            metadata["base_commit"] = repo.text("base_commit")
    return instance_id, metadata


def _recorded_tools(rc: Node | None, legacy: bool) -> list[ToolSpec] | None:
    """The run's tools from ``replay_config.agent.tools.command_docs`` (None when not recorded)."""
    agent = rc.opt("agent", dict) if rc is not None else None
    tools = agent.opt("tools", dict) if agent is not None else None
    docs = tools.text("command_docs") if tools is not None else ""
    specs = from_command_docs(docs, legacy=legacy) if docs else []
    if specs and not any(t.name == "bash" for t in specs) and (legacy or tools.value.get("enable_bash_tool")):
        specs = [BASH, *specs]
    return specs or None


def _text_call(raw: str, tools: list[ToolSpec] | None) -> ToolCall:
    """A function-calling run's step recorded only as its action text (``submit``, ``bash`` lines)."""
    text = raw.strip()
    word = text.split(maxsplit=1)[0] if text else ""
    spec = next((t for t in tools or [] if t.name == word), None)
    if spec is not None and not spec.params:
        return ToolCall(name=word)
    if word == "submit":
        return ToolCall(name="submit")
    return ToolCall(name="bash", arguments={"command": text})


def plain_command(action: ToolCall) -> str | None:
    """The raw command line an action would have had, to decide whether `raw_action` adds anything."""
    if action.name == "bash":
        return action.arguments.get("command")
    if set(action.arguments) <= {"args"}:
        rest = action.arguments.get("args", "")
        return f"{action.name} {rest}" if rest else action.name
    return None
