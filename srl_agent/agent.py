"""The agent loop: a policy acts in a sandboxed repo until it submits. One loop for every caller.

    with open_task_sandbox(spec, image) as sb:                      # the caller opens the environment
        ending = run_loop(sb, policy, SlidingWindow("bash_only"), spec.problem_statement, AgentConfig())
    report = grade_patch(spec, ending.patch)                         # ... and grades

`run_loop` takes its environment (anything with `SandboxLike`'s ``exec`` / ``write_file`` plus ``diff``:
a Docker `Sandbox`, or `srl_agent.testing.MemorySandbox` in tests) and its prompt format as parameters:

- `SlidingWindow`: each step's prompt is rebuilt from the history (problem, earlier actions, the last
  ``context_steps`` rounds in full): the step-wise SRL data's format (`srl run`, the demo, experiments);
- `AppendOnlyChat`: one conversation that only grows (RLVR: `srl_agent.rlvr_runner` wraps its token-level
  generation in a policy that records token ids, the env mask and logprobs).

Terminal events are exceptions caught in one place; every episode ends with one of `EXIT_STATUSES`:

- ``submitted``: the policy called ``submit``; the patch is what ``submit`` returned;
- ``step_limit`` / ``time_limit`` / ``token_limit``: ``max_steps`` actions, ``time_limit`` seconds, or the
  generation budget (``max_total_tokens``, or the RLVR completion budget) ran out; the patch is the diff;
- ``format_error``: ``max_format_errors`` malformed answers in a row; the patch is the diff;
- ``error``: the environment failed (reported in ``error``); no patch.

The trajectory (our schema, importable as data) is written in ``finally``. `run_episode` and `run_task`
(the library side of ``srl run``) are callers: open the task's sandbox, run the loop, grade the patch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from envs.spec import TESTBED, TaskSpec
from harness.evaluate import outcome_of, run_instance, write_outcome
from harness.grading import InstanceReport, grade
from harness.sandbox import Sandbox, SandboxConfig
from harness.tools.runtime import SandboxLike, ToolRuntime
from srl_agent.policy import Policy
from trajectories.actions import ActionParseError, parse_answer
from trajectories.errors import SrlSweError
from trajectories.prompting import build_messages, format_error_message, observation_message
from trajectories.schema import Step, Trajectory

ExitStatus = Literal["submitted", "step_limit", "time_limit", "token_limit", "format_error", "error"]
EXIT_STATUSES: tuple[str, ...] = get_args(ExitStatus)
Messages = list[dict[str, Any]]


class AgentConfig(BaseModel):
    """Everything a user can set for one episode."""

    model_config = ConfigDict(extra="forbid")

    toolset: str = Field(
        "bash_only", description="tools the policy is told about (bash_only, editor, swe_agent)"
    )
    max_steps: int = Field(30, ge=1, description="actions executed before the episode ends (step_limit)")
    max_format_errors: int = Field(3, ge=1, description="consecutive malformed answers before giving up")
    time_limit: float = Field(1800.0, gt=0, description="wall-clock seconds for the whole episode")
    max_total_tokens: int | None = Field(None, description="cap on generated characters/4 over the episode")
    step_timeout: float = Field(120.0, gt=0, description="seconds per command in the sandbox")
    context_steps: int = Field(2, ge=0, description="rounds shown in full in the sliding-window prompt")
    max_obs_tokens: int | None = Field(1000, description="observation budget in the prompt (tokens)")
    temperature: float = Field(0.0, ge=0)
    max_new_tokens: int = Field(256, ge=1)
    grade: bool = True


# -- terminal events ---------------------------------------------------------------------------------


class Terminal(SrlSweError, Exception):
    """An event that ends the episode; `status` is its exit status."""

    status: ExitStatus = "error"


class Submitted(Terminal):
    status = "submitted"

    def __init__(self, patch: str) -> None:
        super().__init__("submitted")
        self.patch = patch


class StepLimit(Terminal):
    status = "step_limit"


class TimeLimit(Terminal):
    status = "time_limit"


class TokenLimit(Terminal):
    """Raised by the loop (``max_total_tokens``) or by a generation wrapper whose budget is spent."""

    status = "token_limit"


class FormatError(Terminal):
    status = "format_error"


class PolicyError(SrlSweError, RuntimeError):
    """The policy cannot go on for a reason of its own set-up (not an episode outcome): raised through
    the loop instead of ending the episode with ``error``."""


# -- prompt formats ----------------------------------------------------------------------------------


@dataclass
class Turn:
    """One exchange: the policy's answer and the step it became (None when it did not parse)."""

    answer: str
    step: Step | None = None
    error: str | None = None


class PromptFormat(Protocol):
    def messages(self, problem_statement: str, turns: Sequence[Turn]) -> Messages:
        """The chat messages the policy answers next, after `turns`."""
        ...


@dataclass(frozen=True)
class SlidingWindow:
    """Rebuilt every step: the step-wise training data's prompt (`trajectories.prompting.build_messages`).
    Malformed answers leave no trace in it."""

    toolset: str = "bash_only"
    context_steps: int = 2
    max_obs_tokens: int | None = 1000

    def messages(self, problem_statement: str, turns: Sequence[Turn]) -> Messages:
        steps = [t.step for t in turns if t.step is not None]
        return build_messages(problem_statement, steps, self.toolset, context_steps=self.context_steps,
                              max_obs_tokens=self.max_obs_tokens)  # fmt: skip


@dataclass(frozen=True)
class AppendOnlyChat:
    """One conversation that only grows: the first prompt, then per turn the policy's answer as written and
    the observation (or the parse error) as the next user message. What the policy saw at turn k is a
    prefix of what it sees at turn k+1, so a trainer can score the tokens it generated."""

    toolset: str = "bash_only"
    max_obs_tokens: int | None = 512

    def messages(self, problem_statement: str, turns: Sequence[Turn]) -> Messages:
        msgs: Messages = build_messages(problem_statement, [], self.toolset, context_steps=0)
        for t in turns:
            msgs.append({"role": "assistant", "content": t.answer})
            if t.step is not None:
                msgs.append(observation_message(t.step.observation, self.max_obs_tokens))
            else:
                msgs.append(format_error_message(t.error or "the answer did not parse"))
        return msgs


# -- the loop ----------------------------------------------------------------------------------------


class AgentEnv(SandboxLike, Protocol):
    """What the loop needs of its environment: the tool runtime's `SandboxLike` and the repo's diff."""

    def diff(self, repo: str = TESTBED) -> str: ...


@dataclass
class Ending:
    """How `run_loop` ended."""

    status: ExitStatus
    patch: str
    format_errors: int
    turns: list[Turn] = field(default_factory=list)
    error: str | None = None


def run_loop(
    env: AgentEnv,
    policy: Policy,
    prompt: PromptFormat,
    trajectory: Trajectory,
    config: AgentConfig,
    *,
    repo: str = TESTBED,
    save_to: Path | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Ending:
    """Ask, parse, act, observe until a terminal event; the steps go into `trajectory` (saved to `save_to`
    in ``finally``). Environment failures end the episode with status ``error``."""
    cfg = config
    tools = ToolRuntime(env, repo=repo, timeout=cfg.step_timeout)
    started = clock()
    turns: list[Turn] = []
    end = Ending(status="error", patch="", format_errors=0, turns=turns)
    consecutive = generated = 0
    try:
        try:
            while True:
                if len(trajectory.steps) >= cfg.max_steps:
                    raise StepLimit()
                if clock() - started > cfg.time_limit:
                    raise TimeLimit()
                messages = prompt.messages(trajectory.problem_statement, turns)
                answer = policy.generate([messages], temperature=cfg.temperature,
                                         max_new_tokens=cfg.max_new_tokens)[0]  # fmt: skip
                generated += -(-len(answer) // 4)
                if cfg.max_total_tokens is not None and generated > cfg.max_total_tokens:
                    raise TokenLimit()
                try:
                    thought, call = parse_answer(answer)
                except ActionParseError as exc:
                    end.format_errors += 1
                    consecutive += 1
                    turns.append(Turn(answer, None, str(exc)))
                    if consecutive >= cfg.max_format_errors:
                        raise FormatError() from None
                    continue
                consecutive = 0
                obs = tools.execute(call)
                step = Step(thought=thought, action=call, observation=obs.text, execution_time=obs.duration)
                trajectory.steps.append(step)
                turns.append(Turn(answer, step))
                if obs.submitted:
                    raise Submitted(obs.patch or "")
        except Submitted as done:
            end.status, end.patch = done.status, done.patch
        except Terminal as done:
            end.status, end.patch = done.status, env.diff(repo)
    except PolicyError:
        raise
    except Exception as exc:  # the environment failed: keep what we have
        end.status, end.error = "error", f"{type(exc).__name__}: {exc}"
    finally:
        trajectory.exit_status = end.status
        trajectory.final_patch = end.patch
        trajectory.metadata.update(format_errors=end.format_errors, error=end.error)
        if save_to is not None:
            save_trajectory(trajectory, save_to)
    return end


def save_trajectory(trajectory: Trajectory, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(trajectory.model_dump_json() + "\n")


# -- one result type -----------------------------------------------------------------------------------


class EpisodeResult(BaseModel):
    """One episode, for every caller: outcome and grade (`srl run`, the demo), plus the token view of an
    RLVR episode (``prompt_ids``, ``completion_ids``, ``env_mask``, ``logprobs``) the trainer learns from."""

    model_config = ConfigDict(extra="forbid")

    instance_id: str = ""
    exit_status: ExitStatus = "submitted"
    steps: int = 0
    format_errors: int = 0
    patch: str = ""
    resolved: bool | None = None
    report: dict[str, Any] | None = None
    tamper: list[str] = Field(default_factory=list, description="evidence when the patch was graded tamper")
    trajectory_path: str | None = None
    duration_s: float = 0.0
    error: str | None = None
    prompt_ids: list[int] = Field(default_factory=list, description="RLVR: the first prompt's token ids")
    completion_ids: list[int] = Field(default_factory=list, description="RLVR: every token after the prompt")
    env_mask: list[int] = Field(
        default_factory=list, description="RLVR: 1 = token the policy wrote, 0 = observation / template token"
    )
    logprobs: list[float | None] | None = Field(
        None, description="RLVR: sampling logprobs of completion_ids (vLLM; None for observation tokens)"
    )

    @property
    def format_error(self) -> bool:
        """The episode ended on malformed answers (the RLVR reward's -1)."""
        return self.exit_status == "format_error"

    @model_validator(mode="after")
    def _same_length(self) -> EpisodeResult:
        if len(self.env_mask) != len(self.completion_ids):
            raise ValueError(
                f"env_mask has {len(self.env_mask)} entries for {len(self.completion_ids)} tokens"
            )
        if self.logprobs is not None and len(self.logprobs) != len(self.completion_ids):
            raise ValueError(
                f"logprobs has {len(self.logprobs)} entries for {len(self.completion_ids)} tokens"
            )
        return self


# -- callers: open the sandbox, run the loop, grade --------------------------------------------------------


def open_task_sandbox(spec: TaskSpec, image: str, step_timeout: float, *, kind: str = "agent",
                      client: Any = None) -> Sandbox:  # fmt: skip
    """A sandbox of the task's instance image, with the task's limits, the repo as working directory."""
    return Sandbox(SandboxConfig.for_task(spec, image, kind=kind, timeout=step_timeout), client=client)


def task_sandbox(spec: TaskSpec, image: str, step_timeout: float, client: Any = None) -> Sandbox:
    """The earlier name of `open_task_sandbox`."""
    return open_task_sandbox(spec, image, step_timeout, client=client)


def grade_patch(spec: TaskSpec, patch: str, *, model: str, client: Any = None,
                eval_dir: Path | None = None) -> InstanceReport:  # fmt: skip
    """Grade `patch` with the evaluation harness (fresh sandbox): `run_instance` + `grade`."""
    run = run_instance(spec, patch or None, model=model, client=client)
    report = grade(spec, run)
    if eval_dir is not None:
        write_outcome(outcome_of(spec, run, report), eval_dir)
    return report


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
    """Run one sliding-window episode of `policy` on `spec`; save the trajectory and grade the final diff
    (unless the environment failed or ``config.grade`` is off)."""
    from harness.images import ensure_instance_image

    cfg = config or AgentConfig()
    started = time.monotonic()
    traj = Trajectory(
        instance_id=spec.instance_id,
        source_format="srl",
        problem_statement=spec.problem_statement,
        metadata={"toolset": cfg.toolset, "model": model_name, "agent_config": cfg.model_dump()},
    )
    path = out_dir / f"{spec.instance_id}.srl.jsonl" if out_dir is not None else None
    prompt = SlidingWindow(cfg.toolset, cfg.context_steps, cfg.max_obs_tokens)
    image = image or ensure_instance_image(spec, client=client)
    try:
        with open_task_sandbox(spec, image, cfg.step_timeout, client=client) as sb:
            end = run_loop(sb, policy, prompt, traj, cfg, save_to=path)
    except Exception as exc:  # no sandbox: nothing ran
        end = Ending(status="error", patch="", format_errors=0, error=f"{type(exc).__name__}: {exc}")
        traj.exit_status, traj.metadata["error"] = "error", end.error
        if path is not None:
            save_trajectory(traj, path)
    return graded_result(
        spec, traj, end, grade_it=cfg.grade and end.status != "error", model=model_name, client=client,
        eval_dir=out_dir / "eval" if out_dir is not None else None, path=path, started=started,
    )  # fmt: skip


def graded_result(
    spec: TaskSpec,
    traj: Trajectory,
    end: Ending,
    *,
    grade_it: bool,
    model: str,
    client: Any,
    eval_dir: Path | None,
    path: Path | None,
    started: float,
    **tokens: Any,
) -> EpisodeResult:
    """The end of every episode: grade its final diff when `grade_it` (`grade_patch`), record the outcome on
    the trajectory (saved again at `path`) and return the one result type (`tokens`: the RLVR token view)."""
    report: InstanceReport | None = None
    if grade_it:
        report = grade_patch(spec, end.patch, model=model, client=client, eval_dir=eval_dir)
        traj.resolved = report.resolved
        traj.metadata["grade"] = {"status": report.status, "tamper": [str(e) for e in report.tamper]}
        if path is not None:
            save_trajectory(traj, path)
    return EpisodeResult(
        instance_id=spec.instance_id,
        exit_status=end.status,
        steps=len(traj.steps),
        format_errors=end.format_errors,
        patch=end.patch,
        resolved=report.resolved if report else None,
        report=report.model_dump() if report else None,
        tamper=[str(e) for e in report.tamper] if report else [],
        trajectory_path=str(path) if path else None,
        duration_s=round(time.monotonic() - started, 3),
        error=end.error,
        **tokens,
    )


# -- `srl run` as a library function ---------------------------------------------------------------------


class RunConfig(AgentConfig):
    """`srl run`: one task, one policy, one episode; loadable from YAML (``--config``), every field
    overridable (``--set key=value`` or the command's flags)."""

    task: str = Field(description="instance id of the task")
    tasks: str | None = Field(None, description="task source (default: the bundled examples pack)")
    repos: Path | None = Field(None, description="dir of local clones / bundles for owner/name repos")
    model: str = Field("smollm2-135m-instruct", description="model dir or cached name")
    policy: Literal["auto", "transformers", "vllm", "scripted"] = Field(
        "auto", description="auto (vLLM when installed, else transformers) | transformers | vllm | scripted"
    )
    trajectory: Path | None = Field(None, description="expert trajectory to replay (policy: scripted)")
    toolset: str | None = Field(
        None, description="tools shown to the policy (default: the trajectory's, else bash_only)"
    )  # type: ignore[assignment]
    out: Path = Field(Path("runs/agent"), description="where the trajectory and the report go (OUT/TASK)")


class RunInputError(SrlSweError, ValueError):
    """`srl run` was given a task, trajectory or policy it cannot use; the message names the field."""


def run_task(config: RunConfig, *, client: Any = None) -> tuple[EpisodeResult, str]:
    """Load the task and the policy `config` names and run one graded episode in ``OUT/TASK``.
    Returns the result and the policy's name (as written in the trajectory)."""
    from envs.sources import TaskSourceError, load_tasks
    from srl_agent.policy import ScriptedPolicy, load_policy
    from trajectories.importers import load_trajectories

    try:
        spec = load_tasks(config.tasks, config.repos).get(config.task)
    except (KeyError, TaskSourceError) as exc:
        raise RunInputError(f"task {config.task}: {exc}") from None
    toolset, max_steps, model_name = config.toolset, config.max_steps, config.model
    if config.policy == "scripted":
        if config.trajectory is None:
            raise RunInputError("policy scripted needs a trajectory (--trajectory FILE)")
        found = load_trajectories([config.trajectory])
        trajs = [t for t in found if t.instance_id == config.task] or found
        if not trajs:
            raise RunInputError(f"trajectory {config.trajectory}: no trajectory in the file")
        policy: Policy = ScriptedPolicy.from_trajectory(trajs[0])
        toolset = toolset or trajs[0].metadata.get("toolset") or "bash_only"
        max_steps = max(max_steps, len(trajs[0].steps))
        model_name = f"scripted:{config.trajectory.name}"
    else:
        policy = load_policy(config.model, backend=config.policy)
    agent = AgentConfig(**{**config.model_dump(include=set(AgentConfig.model_fields)),
                           "toolset": toolset or "bash_only", "max_steps": max_steps})  # fmt: skip
    try:
        result = run_episode(spec, policy, agent, out_dir=config.out / config.task, model_name=model_name,
                             client=client)  # fmt: skip
    finally:
        if hasattr(policy, "close"):
            policy.close()
    return result, model_name
