"""The expert's own tool set, read from what its source recorded.

Three published shapes:

- a **function list in the system prompt** (SWE-smith rows, OpenHands' text format)::

      ---- BEGIN FUNCTION #1: bash ----
      Description: Execute a bash command in the terminal.
      Parameters:
        (1) command (string, required): The bash command to execute.
      ---- END FUNCTION #1 ----

- **OpenAI ``tools`` schemas** (SWE-Gym / OpenHands rows); Parquet fills absent keys with nulls,
  which are dropped here;
- **SWE-agent command docs** (``replay_config.agent.tools.command_docs``, and the ``COMMANDS:`` block
  of SWE-agent 0.x system prompts as in the nebius rows)::

      open:
        docstring: opens the file at the given path in the editor. ...
        signature: open <path> [<line_number>]
        arguments:
          - path (string) [required]: the path to the file to open

  Raw command-line tools (`legacy=True`) take one parameter ``args`` (everything after the command
  name, as `trajectories.importers.swe_agent.legacy_call` records it); their recorded signature and
  arguments are kept in the description.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from trajectories.schema import ParamSpec, ToolCall, ToolSpec

_TYPES = {"string", "integer", "number", "boolean", "array", "object"}
_FUNCTION_BLOCK = re.compile(
    r"---- BEGIN FUNCTION #\d+: (?P<name>[A-Za-z_][\w.\-]*) ----\n(?P<body>.*?)\n---- END FUNCTION #\d+ ----",
    re.S,
)
_FUNCTION_PARAM = re.compile(
    r"^\s*\(\d+\) (?P<name>[A-Za-z_]\w*) \((?P<type>\w+), (?P<req>required|optional)\): ?(?P<desc>.*)$"
)
_ALLOWED = re.compile(r"^\s*Allowed values: \[(.*)\]\s*$")
_DOC_HEAD = re.compile(r"^(?P<name>[A-Za-z_][\w.\-]*):\s*$")
_DOC_ARG = re.compile(
    r"^\s*- (?P<name>[A-Za-z_]\w*) \((?P<type>\w+)\) \[(?P<req>required|optional)\]: ?(?P<desc>.*)$"
)


def _type(name: str) -> str:
    name = name.lower()
    return {"int": "integer", "str": "string", "bool": "boolean", "list": "array"}.get(
        name, name if name in _TYPES else "string"
    )


def from_function_list(text: str) -> list[ToolSpec]:
    """Tools of a ``---- BEGIN FUNCTION #N: name ----`` list (empty when `text` holds none)."""
    tools = []
    for m in _FUNCTION_BLOCK.finditer(text):
        body = m.group("body")
        head, sep, params_text = body.partition("\nParameters:\n")
        desc = re.sub(r"^Description:\s*", "", head.strip())
        desc = desc.replace("No parameters are required for this function.", "").strip()
        params: list[ParamSpec] = []
        for line in params_text.splitlines() if sep else []:
            pm = _FUNCTION_PARAM.match(line)
            if pm:
                params.append(
                    ParamSpec(
                        name=pm.group("name"),
                        type=_type(pm.group("type")),
                        description=pm.group("desc").strip(),
                        required=pm.group("req") == "required",
                    )
                )
                continue
            am = _ALLOWED.match(line)
            if am and params:
                values = tuple(v.strip().strip("`") for v in am.group(1).split(","))
                params[-1] = params[-1].model_copy(update={"enum": values})
            elif params and line.strip():
                last = params[-1]
                params[-1] = last.model_copy(update={"description": f"{last.description} {line.strip()}"})
        tools.append(
            ToolSpec(name=m.group("name"), description=desc or m.group("name"), params=tuple(params))
        )
    return tools


def from_openai_tools(tools: Any) -> list[ToolSpec]:
    """Tools of OpenAI ``tools`` schemas (``[{"type": "function", "function": {...}}]``)."""
    out = []
    for entry in tools if isinstance(tools, list) else []:
        fn = entry.get("function") if isinstance(entry, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue
        schema = fn.get("parameters") or {}
        props = {k: v for k, v in (schema.get("properties") or {}).items() if isinstance(v, dict)}
        required = set(schema.get("required") or [])
        params = []
        for name, prop in props.items():
            enum = prop.get("enum")
            params.append(
                ParamSpec(
                    name=name,
                    type=_type(str(prop.get("type") or "string")),
                    description=(prop.get("description") or "").strip() or name,
                    required=name in required,
                    enum=tuple(map(str, enum)) if isinstance(enum, list) and enum else None,
                )
            )
        out.append(
            ToolSpec(name=fn["name"], description=(fn.get("description") or "").strip(), params=tuple(params))
        )
    return out


def from_command_docs(text: str, *, legacy: bool = False) -> list[ToolSpec]:
    """Tools of SWE-agent command docs (``name:`` / ``docstring:`` / ``signature:`` / ``arguments:``)."""
    tools = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        head = _DOC_HEAD.match(lines[i])
        if not head or i + 1 >= len(lines) or not lines[i + 1].lstrip().startswith("docstring:"):
            i += 1
            continue
        name = head.group("name")
        doc: list[str] = []
        sig: list[str] = []
        args: list[ParamSpec] = []
        field = None
        i += 1
        while i < len(lines) and not (_DOC_HEAD.match(lines[i]) and not lines[i].startswith(" ")):
            line = lines[i]
            stripped = line.strip()
            if stripped.startswith("docstring:"):
                field, rest = "doc", stripped[len("docstring:") :].strip()
                doc.append(rest)
            elif stripped.startswith("signature:"):
                field, rest = "sig", stripped[len("signature:") :].strip()
                sig.append(rest)
            elif stripped == "arguments:":
                field = "args"
            elif field == "args" and (am := _DOC_ARG.match(line)):
                args.append(
                    ParamSpec(
                        name=am.group("name"),
                        type=_type(am.group("type")),
                        description=am.group("desc").strip(),
                        required=am.group("req") == "required",
                    )
                )
            elif stripped and field == "doc":
                doc.append(stripped)
            elif field == "sig" and not line.startswith("  ") and stripped:
                sig.append(line)  # multi-line signatures (edit ... end_of_edit) are not indented
            elif not stripped and field == "sig":
                field = None
            i += 1
        description = " ".join(d for d in doc if d)
        signature = "\n".join(sig) or None
        if legacy and name != "bash":
            arg_text = "; ".join(
                f"{a.name} ({a.type}, {'required' if a.required else 'optional'}): {a.description}"
                for a in args
            )
            params = (
                (
                    ParamSpec(
                        name="args",
                        description=f"Everything after the command name, as on the command line: {signature}"
                        + (f". Arguments: {arg_text}" if arg_text else ""),
                    ),
                )
                if args
                else ()
            )
            full = f"{description} Usage: {signature}" if signature else description
            tools.append(ToolSpec(name=name, description=full, params=params, signature=signature))
        else:
            tools.append(
                ToolSpec(name=name, description=description, params=tuple(args), signature=signature)
            )
    return tools


def _undeclared(name: str, keys: Iterable[str]) -> ToolSpec:
    ps = tuple(ParamSpec(name=k, description="(no description recorded)", required=False) for k in keys)
    return ToolSpec(name=name, description="(no description recorded)", params=ps)


def cover_calls(tools: Sequence[ToolSpec], calls: Iterable[ToolCall]) -> tuple[ToolSpec, ...]:
    """`tools` plus whatever the expert's calls used that they do not declare (a tool, or a parameter
    of a declared tool), so every expert action is declared in the prompt it is trained on."""
    by_name = {t.name: t for t in tools}
    extra: dict[str, dict[str, None]] = {}
    for call in calls:
        spec = by_name.get(call.name)
        known = {p.name for p in spec.params} if spec is not None else set()
        missing = [k for k in call.arguments if k not in known]
        if spec is None or missing:
            extra.setdefault(call.name, {}).update(dict.fromkeys(missing))
    if not extra:
        return tuple(tools)
    out = []
    for t in tools:
        if t.name in extra:
            more = tuple(
                ParamSpec(name=k, description="(no description recorded)", required=False)
                for k in extra.pop(t.name)
            )
            t = t.model_copy(update={"params": t.params + more})
        out.append(t)
    return tuple(out) + tuple(_undeclared(n, keys) for n, keys in extra.items())
