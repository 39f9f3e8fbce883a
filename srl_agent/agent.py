"""The agent loop: a policy acts in a sandboxed repo until it submits.

    result = run_episode(spec, policy, AgentConfig(max_steps=20), out_dir=Path("runs/agent/x"))

One readable loop: build the prompt from the history (the same `build_messages` the training data
uses), ask the policy, parse its answer, execute the action in the sandbox, append the observation.
Terminal events (submit, step / time / token limits, repeated format errors) are exceptions caught in
one place; the episode is saved as a `Trajectory` (our schema, importable as data) in ``finally``, and
its final diff is graded by the evaluation harness in a fresh sandbox.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from envs.spec import TaskSpec
from harness.evaluate import outcome_of, run_instance, write_outcome
from harness.grading import InstanceReport, grade
from harness.images import ensure_instance_image
from harness.sandbox import Sandbox, SandboxConfig
from harness.tools.runtime import ToolRuntime
from srl_agent.policy import Policy
from trajectories.actions import ActionParseError, parse_answer
from trajectories.prompting import build_messages
from trajectories.schema import Step, Trajectory

ExitStatus = Literal["submitted", "step_limit", "time_limit", "token_limit", "format_errors", "error"]
TESTBED = "/testbed"


class AgentConfig(BaseModel):
    """Everything a user can set for one episode."""

    model_config = ConfigDict(extra="forbid")

    toolset: str = Field("bash_only", description="tools the policy is told about (bash_only, editor, swe_agent)")
    max_steps: int = Field(30, ge=1)
    max_format_errors: int = Field(3, ge=1, description="consecutive malformed answers before giving up")
    time_limit: float = Field(1800.0, gt=0, description="wall-clock seconds for the whole episode")
    max_total_tokens: int | None = Field(None, description="cap on generated characters/4 over the episode")
    step_timeout: float = Field(120.0, gt=0, description="seconds per command in the sandbox")
    context_steps: int = Field(2, ge=0)
    max_obs_tokens: int | None = Field(1000, description="observation budget in the prompt (tokens)")
    temperature: float = Field(0.0, ge=0)
    max_new_tokens: int = Field(256, ge=1)
    grade: bool = True


class _Terminal(Exception):
    status: ExitStatus = "error"


class _Submitted(_Terminal):
    status = "submitted"

    def __init__(self, patch: str) -> None:
        super().__init__("submitted")
        self.patch = patch


class _StepLimit(_Terminal):
    status = "step_limit"


class _TimeLimit(_Terminal):
    status = "time_limit"


class _TokenLimit(_Terminal):
    status = "token_limit"


class _FormatErrors(_Terminal):
    status = "format_errors"


def task_sandbox(spec: TaskSpec, image: str, step_timeout: float, client: Any = None) -> Sandbox:
    """A sandbox of the task's instance image, with the task's limits, the repo as working directory."""
    cfg = SandboxConfig(image=image, workdir=TESTBED, timeout=step_timeout, cpus=spec.limits.cpus,
                        memory=spec.limits.memory, pids_limit=spec.limits.pids)
    return Sandbox(cfg, client=client)


class EpisodeResult(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    instance_id: str
    exit_status: ExitStatus
    steps: int
    format_errors: int
    patch: str
    resolved: bool | None
    report: dict[str, Any] | None = None
    trajectory_path: str | None = None
    duration_s: float
    error: str | None = None


def run_episode(
    spec: TaskSpec,
    policy: Policy,
    config: AgentConfig | None = None,
    *,
    out_dir: Path | None = None,
    model_name: str = "policy",
    client: Any = None,
    image: str | None = None,
) -> EpisodeResult:
    """Run one episode of `policy` on `spec`; save the trajectory and grade the final diff."""
    cfg = config or AgentConfig()
    started = time.monotonic()
    image = image or ensure_instance_image(spec, client=client)
    traj = Trajectory(
        instance_id=spec.instance_id,
        source_format="srl",
        problem_statement=spec.problem_statement,
        metadata={"toolset": cfg.toolset, "model": model_name, "agent_config": cfg.model_dump()},
    )
    format_errors = consecutive_errors = 0
    generated_tokens = 0
    patch = ""
    status: ExitStatus = "error"
    error: str | None = None
    try:
        with task_sandbox(spec, image, cfg.step_timeout, client) as sb:
            tools = ToolRuntime(sb)
            try:
                while True:
                    if len(traj.steps) >= cfg.max_steps:
                        raise _StepLimit()
                    if time.monotonic() - started > cfg.time_limit:
                        raise _TimeLimit()
                    messages = build_messages(spec.problem_statement, traj.steps, cfg.toolset,
                                              context_steps=cfg.context_steps, max_obs_tokens=cfg.max_obs_tokens)
                    answer = policy.generate([messages], temperature=cfg.temperature,
                                             max_new_tokens=cfg.max_new_tokens)[0]
                    generated_tokens += -(-len(answer) // 4)
                    if cfg.max_total_tokens is not None and generated_tokens > cfg.max_total_tokens:
                        raise _TokenLimit()
                    try:
                        thought, call = parse_answer(answer)
                    except ActionParseError:
                        format_errors += 1
                        consecutive_errors += 1
                        if consecutive_errors >= cfg.max_format_errors:
                            raise _FormatErrors() from None
                        continue
                    consecutive_errors = 0
                    obs = tools.execute(call)
                    traj.steps.append(Step(thought=thought, action=call, observation=obs.text,
                                           execution_time=obs.duration))
                    if obs.submitted:
                        raise _Submitted(obs.patch or "")
            except _Submitted as end:
                status, patch = end.status, end.patch
            except _Terminal as end:
                status = end.status
                patch = sb.diff(TESTBED)
    except Exception as exc:  # the episode failed for an infrastructure reason: keep what we have
        status, error = "error", f"{type(exc).__name__}: {exc}"
    finally:
        traj.exit_status = status
        traj.final_patch = patch
        traj.metadata.update(format_errors=format_errors, error=error)
        traj_path = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            traj_path = out_dir / f"{spec.instance_id}.srl.jsonl"
            traj_path.write_text(traj.model_dump_json() + "\n")

    report: InstanceReport | None = None
    if cfg.grade and status != "error":
        run = run_instance(spec, patch or None, model=model_name, client=client)
        report = grade(spec, run)
        if out_dir is not None:
            write_outcome(outcome_of(spec, run, report), out_dir / "eval")
        traj.resolved = report.resolved
        if traj_path is not None:
            traj_path.write_text(traj.model_dump_json() + "\n")
    return EpisodeResult(
        instance_id=spec.instance_id,
        exit_status=status,
        steps=len(traj.steps),
        format_errors=format_errors,
        patch=patch,
        resolved=report.resolved if report else None,
        report=report.model_dump() if report else None,
        trajectory_path=str(traj_path) if traj_path else None,
        duration_s=round(time.monotonic() - started, 3),
        error=error,
    )
