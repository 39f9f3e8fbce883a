"""OpenHands event streams: a JSON list of events, or benchmark output records (JSONL lines with
``instance_id``, ``instruction``, ``history``, ``test_result``).

Every agent action event is handled explicitly:

- ``run`` -> ``bash(command)``; ``read`` -> ``str_replace_editor(command="view", path, view_range)``;
  ``edit`` -> ``str_replace_editor(...)`` with the arguments of the recorded tool call (or, without
  one, the event's own ``command``/``path``/``file_text``/``old_str``/``new_str``/``insert_line``);
- ``finish`` -> ``submit()`` (its thought kept);
- ``think`` -> not an action: its thought is prepended to the next step's thought (counted in notes);
- ``message`` from the agent, an LLM-based ``edit`` without a command, an agent ``error`` observation
  (a rejected tool call) and any other action type -> **skipped steps** with the reason;
- events that are not agent turns (``system``, ``recall``, user ``message``, ``change_agent_state``,
  state-change / null observations) are ignored and counted in notes.

Observations are joined to their action through ``cause`` (the action's event ``id``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from trajectories.importers.base import Ctx, Imported, Node, SkippedStep, extract_issue, trajectory_id
from trajectories.schema import Step, ToolCall, Trajectory
from trajectories.tools import canonical_call

FORMAT = "openhands"
_EDITOR_KEYS = ("command", "path", "file_text", "old_str", "new_str", "insert_line", "view_range")
_NOT_TURNS = {"system", "recall", "change_agent_state"}


def looks_like_events(data: Any) -> bool:
    return (
        isinstance(data, list)
        and bool(data)
        and isinstance(data[0], dict)
        and "source" in data[0]
        and ("action" in data[0] or "observation" in data[0])
    )


def looks_like_record(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("history"), list) and "instruction" in data


def _recorded_tool_args(event: Node) -> tuple[str, dict[str, Any]] | None:
    """(function name, JSON arguments) of the LLM tool call behind an action event, when recorded."""
    meta = event.opt("tool_call_metadata", dict)
    if meta is None:
        return None
    name = meta.text("function_name")
    call_id = meta.text("tool_call_id")
    resp = meta.opt("model_response", dict)
    choices = resp.opt("choices", list) if resp is not None else None
    for choice in choices.items() if choices is not None else []:
        message = choice.opt("message", dict)
        tcs = message.opt("tool_calls", list) if message is not None else None
        for tc in tcs.items() if tcs is not None else []:
            if call_id and tc.text("id") != call_id:
                continue
            fn = tc.req("function", dict)
            raw = fn.text("arguments")
            try:
                args = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as exc:
                raise fn.fail(
                    f"expected a JSON object string, got invalid JSON ({exc.msg})", "arguments"
                ) from None
            if not isinstance(args, dict):
                raise fn.fail("expected a JSON object string", "arguments")
            return fn.text("name") or name, args
    return None


def _action(event: Node, kind: str, args: Node) -> ToolCall | str:
    """The ToolCall for an agent action event, or the reason it is not one."""
    recorded = _recorded_tool_args(event)
    if kind == "run":
        return ToolCall(name="bash", arguments={"command": args.req("command", str).value})
    if kind == "read":
        if recorded and recorded[0] == "str_replace_editor":
            return canonical_call("str_replace_editor", recorded[1])
        view = {"command": "view", "path": args.req("path", str).value}
        vr = args.opt("view_range", list)
        if vr is not None:
            view["view_range"] = vr.value
        return canonical_call("str_replace_editor", view)
    if kind == "edit":
        if recorded and recorded[0] == "str_replace_editor":
            return canonical_call("str_replace_editor", recorded[1])
        if args.text("command"):
            return canonical_call("str_replace_editor", {k: args.value.get(k) for k in _EDITOR_KEYS})
        return "llm_based_edit: no str_replace_editor command recorded"
    if kind == "finish":
        return ToolCall(name="submit")
    if kind == "message":
        return "agent_message: a chat message, not a tool call"
    return f"unsupported_action: {kind}"


@dataclass
class _Walk:
    """What the event walk collected: steps, skipped turns, notes, the task text, whether it finished."""

    observations: dict[int, str]  # action event id -> the content of the observation it caused
    steps: list[Step] = field(default_factory=list)
    skipped: list[SkippedStep] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)
    problem: str = ""
    pending_thoughts: list[str] = field(default_factory=list)  # `think` events waiting for the next step
    finished: bool = False


def load_events(
    events: Node, ctx: Ctx, instance_id: str, raw: bytes | str, record: Node | None = None
) -> Imported:
    walk = _walk(events.items())
    if not walk.steps:
        raise events.fail("empty trajectory: no agent action that maps to a tool call")
    problem, final_patch, exit_status, metadata = walk.problem, None, None, {"toolset": "editor"}
    if record is not None:
        problem, final_patch, exit_status = _record_fields(record, problem, metadata)
    if exit_status is None:
        exit_status = "finished" if walk.finished else None
    traj = Trajectory(
        instance_id=instance_id,
        source_format=FORMAT,
        trajectory_id=trajectory_id(instance_id, FORMAT, raw, ctx.line),
        problem_statement=problem,
        steps=walk.steps,
        final_patch=final_patch,
        exit_status=exit_status,
        metadata=metadata,
    )
    return Imported(traj, walk.skipped, walk.notes)


def _walk(items: list[Node]) -> _Walk:
    """Every event in order: agent actions become steps, the rest skipped turns or notes."""
    observations: dict[int, str] = {}
    for ev in items:
        ev.expect(dict)
        cause = ev.opt("cause", int)
        if ev.has("observation") and cause is not None:
            observations[cause.value] = ev.text("content")
    walk = _Walk(observations)
    for i, ev in enumerate(items):
        source = ev.text("source")
        kind = ev.opt("action", str)
        if kind is None:
            _observation_event(walk, i, ev, source)
        else:
            _action_event(walk, i, ev, source, kind.value)
    return walk


def _observation_event(walk: _Walk, i: int, ev: Node, source: str) -> None:
    """An observation nobody's action caused: a rejected tool call (skipped) or a state change (noted)."""
    obs = ev.text("observation")
    if source == "agent" and obs == "error" and ev.opt("cause") is None:
        walk.skipped.append(SkippedStep(i, "agent_error", ev.text("content")[:200]))
    elif not ev.has("observation"):
        raise ev.fail("expected an 'action' or an 'observation' field")
    elif ev.opt("cause") is None:
        walk.notes[f"ignored {obs or 'null'} observation"] += 1


def _action_event(walk: _Walk, i: int, ev: Node, source: str, kind: str) -> None:
    """An action event: a step, a thought kept for the next step, a skipped turn, or an ignored event."""
    if source != "agent" or kind in _NOT_TURNS:
        if source == "user" and kind == "message" and not walk.problem:
            walk.problem = extract_issue(ev.req("args", dict).text("content") or ev.text("message"))
        walk.notes[f"ignored {source} {kind} event"] += 1
        return
    args = ev.req("args", dict)
    thought = args.text("thought")
    if kind == "think":
        walk.pending_thoughts.append(thought)
        walk.notes["think merged into next step"] += 1
        return
    if kind == "finish":
        thought = thought or args.text("final_thought")
        walk.finished = True
    action = _action(ev, kind, args)
    if isinstance(action, str):
        reason, _, detail = action.partition(": ")
        walk.skipped.append(SkippedStep(i, reason, detail))
        return
    if walk.pending_thoughts:
        thought = "\n\n".join([*walk.pending_thoughts, thought]).strip()
        walk.pending_thoughts = []
    eid = ev.opt("id", int)
    observation = walk.observations.get(eid.value, "") if eid else ""
    walk.steps.append(Step(thought=thought.strip(), action=action, observation=observation))


def _record_fields(
    record: Node, problem: str, metadata: dict[str, Any]
) -> tuple[str, str | None, str | None]:
    """(problem statement, final patch, exit status) of a benchmark output record; its model and agent
    class go into `metadata`."""
    inst = record.opt("instance", dict)
    if inst is not None and inst.text("problem_statement"):
        problem = inst.text("problem_statement")
    elif record.text("instruction"):
        problem = problem or extract_issue(record.text("instruction"))
    tr = record.opt("test_result", dict)
    final_patch = (tr.text("git_patch") or None) if tr is not None else None
    err = record.opt("error")
    exit_status = f"error: {err.value}" if err is not None else None
    md = record.opt("metadata", dict)
    if md is not None:
        llm = md.opt("llm_config", dict)
        if llm is not None and llm.text("model"):
            metadata["model"] = llm.text("model")
        if md.text("agent_class"):
            metadata["agent_class"] = md.text("agent_class")
    return problem, final_patch, exit_status


def load(data: Any, ctx: Ctx, stem: str, raw: bytes | str) -> list[Imported]:
    root = ctx.root(data)
    if isinstance(data, list):
        return [load_events(root, ctx, stem, raw)]
    root.expect(dict)
    instance_id = root.text("instance_id") or stem
    return [load_events(root.req("history", list), ctx, instance_id, raw, record=root)]
