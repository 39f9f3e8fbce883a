"""Replay an expert trajectory in a fresh sandbox of its task and report how faithfully it reproduces.

For each recorded step the expert's action runs through the sandbox tools (`harness.tools`); the new
observation is compared with the recorded one (similarity in [0, 1]; the first step below the threshold
is the first divergent step). Tools we do not implement are reported as unsupported, never faked. At the
end the repository diff (the submitted patch, or the working tree diff when the run never submitted) is
compared with the recorded patch, and the task's tests grade it (`harness.evaluate.run_instance`).

Recorded runs used other repository paths (``/testbed`` in SWE-agent 1.x, ``/<owner>__<repo>`` in the
old SWE-agent layout); the recorded working directory is mapped to ``/testbed`` in the actions and in
the recorded observations before comparing.

    report = replay_task(load_trajectory(path), load_task("marshmallow-3.14.0"))
    print(report.resolved, report.first_divergent_step)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from envs.spec import TESTBED
from harness.tools import SCRIPT_TOOLS, Observation, ToolRuntime
from trajectories.schema import ToolCall, Trajectory
from trajectories.scoring import similarity

if TYPE_CHECKING:
    import docker

    from envs.spec import TaskSpec

# match: similar text; layout: the same words in another arrangement (e.g. `ls` in columns on a tty
# vs one per line on a pipe); diverged: neither; unsupported: the tool is not implemented, not run.
StepStatus = Literal["match", "layout", "diverged", "unsupported", "timeout"]
_HEADER_PREFIXES = ("diff --git ", "index ", "--- ", "+++ ", "@@ ", "new file mode", "deleted file mode",
                    "old mode", "new mode", "similarity index", "rename from", "rename to")  # fmt: skip


class ReplayConfig(BaseModel):
    """Settings of one replay."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.9, ge=0, le=1, description="similarity at or above which a step matches")
    step_timeout: float = Field(120.0, gt=0, description="seconds per replayed action")
    run_tests: bool = True
    test_timeout: float | None = Field(
        None, gt=0, description="seconds for the test run (default: the task's)"
    )
    recorded_workdir: str | None = Field(None, description="repo path in the recording (default: inferred)")
    window: int = 100
    overlap: int = 2
    tool_style: Literal["auto", "v0", "v1"] = Field(
        "auto",
        description="SWE-agent tool output: v0 (old .traj layout), v1 (1.x); auto: from the trajectory",
    )
    timing: bool = Field(False, description="measure each command's own run time in the sandbox")
    rebuild: bool = False
    keep_text: int = Field(4000, ge=0, description="characters of each observation kept in the report")


class StepReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    tool: str
    action: str
    status: StepStatus
    similarity: float | None = None
    exit_code: int | None = None
    duration: float = 0.0
    command_time: float | None = None
    recorded: str = ""
    observed: str = ""


class ReplayReport(BaseModel):
    """Everything a replay found; `resolved` is None when the tests were not run."""

    model_config = ConfigDict(extra="forbid")

    instance_id: str
    trajectory_id: str | None = None
    source_format: str = ""
    image: str = ""
    recorded_workdir: str = TESTBED
    threshold: float = 0.9
    steps: list[StepReport] = Field(default_factory=list)
    n_steps: int = 0
    n_executed: int = 0
    n_matching: int = 0
    n_unsupported: int = 0
    unsupported_tools: list[str] = Field(default_factory=list)
    mean_similarity: float | None = None
    first_divergent_step: int | None = None
    submitted: bool = False
    final_patch: str = ""
    recorded_patch: str | None = None
    patch_identical: bool | None = None
    patch_equivalent: bool | None = None
    patch_similarity: float | None = None
    resolved: bool | None = None
    recorded_resolved: bool | None = None
    grading: dict[str, Any] | None = None
    wall_time: float = 0.0
    replay_time: float = 0.0
    error: str | None = None

    @property
    def all_supported(self) -> bool:
        return self.n_unsupported == 0


# ------------------------------------------------------------------------------------------- pure helpers


def normalize_text(text: str, recorded_workdir: str = TESTBED, target: str = TESTBED) -> str:
    """An observation as compared: LF line endings, the recorded repo path as `target`, no trailing blanks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = map_path(text, recorded_workdir, target)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def map_path(text: str, recorded_workdir: str, target: str = TESTBED) -> str:
    """Replace the recorded repo directory (as a whole path component) with `target`."""
    if not recorded_workdir or recorded_workdir == target:
        return text
    pattern = r"(?<![\w.\-])" + re.escape(recorded_workdir.rstrip("/")) + r"(?![\w.\-])"
    return re.sub(pattern, lambda _m: target, text)


def map_call(call: ToolCall, recorded_workdir: str, target: str = TESTBED) -> ToolCall:
    if recorded_workdir == target:
        return call
    args = {k: map_path(v, recorded_workdir, target) for k, v in call.arguments.items()}
    return ToolCall(name=call.name, arguments=args)


def infer_recorded_workdir(traj: Trajectory) -> str:
    """The repo directory of the recording: metadata if it says, else the most mentioned candidate."""
    meta = traj.metadata or {}
    for key in ("working_dir", "workdir", "cwd", "repo_dir"):
        value = meta.get(key)
        if isinstance(value, str) and value.startswith("/"):
            return value.rstrip("/") or "/"
    candidates = [TESTBED, "/" + re.sub(r"-\d+$", "", traj.instance_id)]
    text = "\n".join(
        [s.observation for s in traj.steps] + [v for s in traj.steps for v in s.action.arguments.values()]
    )
    counts = {c: len(re.findall(re.escape(c) + r"(?![\w.\-])", text)) for c in candidates}
    best = max(candidates, key=lambda c: counts[c])
    return best if counts[best] > 0 else TESTBED


def tool_style(traj: Trajectory) -> str:
    """``v0`` for recordings of SWE-agent 0.x (the old ``.traj`` layout), else ``v1``."""
    meta = traj.metadata or {}
    return "v0" if meta.get("layout") == "old" or meta.get("toolset") == "swe_agent_legacy" else "v1"


def normalize_patch_for_compare(patch: str | None, *, ignore_index: bool = False) -> str:
    """CRLF -> LF, no leading/trailing blank lines, header lines without trailing white space."""
    if not patch:
        return ""
    lines = []
    for line in patch.replace("\r\n", "\n").split("\n"):
        if line.startswith(_HEADER_PREFIXES):
            if ignore_index and line.startswith("index "):
                continue
            line = line.rstrip()
        lines.append(line)
    return "\n".join(lines).strip("\n") + "\n"


def compare_patches(ours: str, recorded: str | None) -> tuple[bool | None, bool | None, float | None]:
    """(identical, equivalent ignoring `index` lines, similarity) of two diffs; Nones without a recording."""
    if recorded is None:
        return None, None, None
    a, b = normalize_patch_for_compare(ours), normalize_patch_for_compare(recorded)
    equivalent = normalize_patch_for_compare(ours, ignore_index=True) == normalize_patch_for_compare(
        recorded, ignore_index=True
    )
    return a == b, equivalent, round(similarity(a, b, mode="fast"), 4)


def layout_similarity(a: str, b: str) -> float:
    """Similarity of the sorted word lists: 1.0 when two texts hold the same words in any layout."""
    return similarity(" ".join(sorted(a.split())), " ".join(sorted(b.split())), mode="fast")


def step_status(recorded: str, observed: str, threshold: float) -> tuple[StepStatus, float]:
    """(status, similarity) of one observation against the recorded one (both already normalized)."""
    if not recorded and not observed:
        return "match", 1.0
    sim = round(similarity(recorded, observed, mode="fast"), 4)
    if sim >= threshold:
        return "match", sim
    if layout_similarity(recorded, observed) >= threshold:
        return "layout", sim
    return "diverged", sim


def action_preview(call: ToolCall, limit: int = 80) -> str:
    """A one-line summary of an action for tables."""
    args = call.arguments
    if call.name == "bash":
        text = args.get("command", "")
    elif "args" in args:
        text = f"{call.name} {args['args']}"
    else:
        text = call.name + " " + " ".join(f"{k}={v}" for k, v in args.items())
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + f"\n[... {len(text) - n} more characters]"


# ------------------------------------------------------------------------------------------------ replay


def replay_steps(
    traj: Trajectory,
    runtime: ToolRuntime,
    config: ReplayConfig,
    report: ReplayReport,
    on_step: Callable[[StepReport], None] | None = None,
) -> Observation | None:
    """Run every step of `traj` through `runtime`, filling `report.steps`; the submit observation, if any."""
    workdir, target = report.recorded_workdir, runtime.repo
    submitted: Observation | None = None
    for i, step in enumerate(traj.steps):
        call = map_call(step.action, workdir, target)
        obs = runtime.execute(call, timeout=config.step_timeout)
        recorded = normalize_text(step.observation, workdir, target)
        observed = normalize_text(obs.text)
        status: StepStatus
        sim: float | None = None
        if obs.unsupported:
            status = "unsupported"
        else:
            status, sim = step_status(recorded, observed, config.threshold)
            if obs.timed_out:
                status = "timeout"
        rep = StepReport(
            index=i,
            tool=call.name,
            action=action_preview(call),
            status=status,
            similarity=sim,
            exit_code=None if obs.unsupported else obs.exit_code,
            duration=round(obs.duration, 4),
            command_time=None if obs.command_time is None else round(obs.command_time, 4),
            recorded=_clip(recorded, config.keep_text),
            observed=_clip(observed, config.keep_text),
        )
        report.steps.append(rep)
        if on_step is not None:
            on_step(rep)
        if obs.submitted:
            submitted = obs
    _summarize_steps(report)
    return submitted


def _summarize_steps(report: ReplayReport) -> None:
    steps = report.steps
    report.n_executed = sum(s.status != "unsupported" for s in steps)
    report.n_unsupported = sum(s.status == "unsupported" for s in steps)
    report.n_matching = sum(s.status in ("match", "layout") for s in steps)
    report.unsupported_tools = sorted({s.tool for s in steps if s.status == "unsupported"})
    sims = [s.similarity for s in steps if s.similarity is not None]
    report.mean_similarity = round(sum(sims) / len(sims), 4) if sims else None
    report.first_divergent_step = next((s.index for s in steps if s.status in ("diverged", "timeout")), None)


def replay_task(
    traj: Trajectory,
    spec: TaskSpec,
    config: ReplayConfig | None = None,
    *,
    client: docker.DockerClient | None = None,
    on_step: Callable[[StepReport], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> ReplayReport:
    """Replay `traj` in a fresh sandbox of `spec`'s instance image, compare, and grade the final diff."""
    from harness.docker_env import get_client
    from harness.images import ensure_instance_image
    from harness.sandbox import Sandbox, SandboxConfig

    config = config or ReplayConfig()
    say = log or (lambda _m: None)
    started = time.perf_counter()
    report = ReplayReport(
        instance_id=spec.instance_id,
        trajectory_id=traj.trajectory_id,
        source_format=traj.source_format,
        recorded_workdir=config.recorded_workdir or infer_recorded_workdir(traj),
        threshold=config.threshold,
        n_steps=len(traj.steps),
        recorded_patch=traj.final_patch,
        recorded_resolved=traj.resolved,
    )
    client = client or get_client()
    say(f"instance image for {spec.instance_id}")
    report.image = ensure_instance_image(spec, client=client, rebuild=config.rebuild)
    sandbox_config = SandboxConfig.for_task(spec, report.image, kind="replay", timeout=config.step_timeout)
    say(f"replaying {len(traj.steps)} steps")
    replay_start = time.perf_counter()
    with Sandbox(sandbox_config, client=client) as sb:
        style = tool_style(traj) if config.tool_style == "auto" else config.tool_style
        runtime = ToolRuntime(
            sb, repo=TESTBED, window=config.window, overlap=config.overlap, timing=config.timing, style=style
        )
        if any(s.action.name in SCRIPT_TOOLS for s in traj.steps):
            runtime.install()  # once, up front, so the first step's time is only its own
        submitted = replay_steps(traj, runtime, config, report, on_step)
        if submitted is not None:
            report.submitted = True
            report.final_patch = submitted.patch or ""
        else:
            report.final_patch = sb.diff(TESTBED)
    report.replay_time = round(time.perf_counter() - replay_start, 3)
    report.patch_identical, report.patch_equivalent, report.patch_similarity = compare_patches(
        report.final_patch, traj.final_patch
    )
    if config.run_tests:
        from harness.evaluate import run_instance
        from harness.grading import grade

        say("running the task's tests on the final diff")
        run = run_instance(spec, report.final_patch or None, model="replay", client=client,
                           timeout=config.test_timeout)  # fmt: skip
        grading = grade(spec, run)
        report.resolved = grading.resolved
        report.grading = grading.model_dump(mode="json")
    report.wall_time = round(time.perf_counter() - started, 3)
    return report


# ------------------------------------------------------------------------------------------------ loading


def load_trajectory(path: str | Path, instance_id: str | None = None) -> Trajectory:
    """The trajectory in `path`; when the file holds several, the one for `instance_id` (else the first).

    A file with a single trajectory gives that trajectory whatever `instance_id` says, so a recording
    can be replayed in a task of another name.
    """
    from trajectories.importers import load_trajectories

    trajs = load_trajectories([Path(path)])
    if not trajs:
        raise ValueError(f"{path}: no trajectory found")
    if instance_id is None or len(trajs) == 1:
        return trajs[0]
    for t in trajs:
        if t.instance_id == instance_id:
            return t
    known = ", ".join(sorted({t.instance_id for t in trajs})[:10])
    raise ValueError(f"{path}: no trajectory for {instance_id!r} (it has: {known})")


def load_task(instance_id: str, source: str | None = None, repos: Path | None = None) -> TaskSpec:
    from envs.sources import load_tasks

    return load_tasks(source, repos).get(instance_id)
