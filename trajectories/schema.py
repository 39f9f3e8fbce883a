"""The trajectory schema: one shape for every recorded agent run we import.

A `Trajectory` is an ordered list of `Step`s; each step is the agent's thought, one tool call
(`ToolCall`) and the observation the environment answered with. Everything that comes in from
outside is validated with ``extra="forbid"`` so a typo in a file is an error, not a silent drop.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ToolCall(BaseModel):
    """One action: a tool name and its arguments, all as text.

    Arguments are strings in the canonical form (numbers and lists that arrive as JSON values are
    stored as their JSON text, e.g. ``"12"`` or ``"[1, 20]"``); tools coerce them when they run. This
    keeps the canonical XML text and the object exact inverses of each other.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
    arguments: dict[str, str] = Field(default_factory=dict)


ParamType = Literal["string", "integer", "number", "boolean", "array", "object"]


class ParamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: ParamType = "string"
    description: str
    required: bool = True
    enum: tuple[str, ...] | None = None


class ToolSpec(BaseModel):
    """One tool an agent can call: its name, what it does and its parameters (rendered into prompts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    params: tuple[ParamSpec, ...] = ()
    signature: str | None = None  # the command-line form, for tools called as raw command lines

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)

    def to_openai(self) -> dict:
        """The OpenAI function-calling schema of this tool (for backends that take `tools=`)."""
        props: dict[str, dict] = {}
        for p in self.params:
            prop: dict = {"type": p.type, "description": p.description}
            if p.type == "array":
                prop["items"] = {"type": "integer"}
            if p.enum:
                prop["enum"] = list(p.enum)
            props[p.name] = prop
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": props,
                    "required": [p.name for p in self.params if p.required],
                },
            },
        }


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thought: str = ""
    action: ToolCall
    observation: str = ""
    raw_action: str | None = None  # the action as the source recorded it, when it differs in form
    execution_time: float | None = None
    cost: float | None = None


class Trajectory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instance_id: str
    source_format: str
    trajectory_id: str | None = None  # unique per recorded run; several runs may share an instance_id
    problem_statement: str = ""
    steps: list[Step] = Field(default_factory=list)
    final_patch: str | None = None
    exit_status: str | None = None
    resolved: bool | None = None
    # the tools the expert had, as its source recorded them (system prompt function list, `tools`
    # schemas, SWE-agent's replay_config); None when the source recorded none
    tools: list[ToolSpec] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def actions(self) -> list[ToolCall]:
        return [s.action for s in self.steps]
