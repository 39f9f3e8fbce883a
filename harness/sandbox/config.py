"""`SandboxConfig`: everything that decides how a sandbox runs, and the one way to make it for a task."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from envs.spec import TESTBED

if TYPE_CHECKING:
    from envs.spec import TaskSpec


class SandboxConfig(BaseModel):
    """Everything that decides how a sandbox runs. Safe defaults: no network, no capabilities."""

    model_config = ConfigDict(extra="forbid")

    image: str = "srl-base:bookworm"
    cpus: float = Field(1.0, gt=0)
    memory: str = "2g"
    pids_limit: int = Field(512, ge=16)
    timeout: float = Field(120.0, gt=0, description="default wall-clock limit per command, seconds")
    output_limit: int = Field(1_000_000, ge=1024, description="bytes of output kept per command (head+tail)")
    workdir: str | None = None
    user: str | None = Field(
        None, description="user to run as; default: 'srl' when the image has it, else root"
    )
    network: bool = False
    reuse_netns: bool = Field(
        True,
        description="without network: join an idle offline network namespace of this process instead of "
        "creating one (saves ~70 ms per start; only for sandboxes whose processes run as a non-root user)",
    )
    env: dict[str, str] = Field(default_factory=dict)
    extra_labels: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def for_task(cls, spec: TaskSpec, image: str, *, kind: str | None = None, **overrides) -> SandboxConfig:
        """The sandbox of one task: its instance `image`, the task's limits (cpus, memory, pids), the
        repository (`/testbed`) as working directory, no network, the task's test timeout as the default
        per-command timeout, labelled with the task's id and `kind` (e.g. "evaluate", "replay").

        `overrides` are any other fields (`timeout=step_timeout`, `output_limit=...`); `extra_labels`
        given there are added to the task's labels."""
        lim = spec.limits
        extra = {"instance_id": spec.instance_id, **({"kind": kind} if kind else {})}
        extra.update(overrides.pop("extra_labels", None) or {})
        fields = dict(
            image=image,
            cpus=lim.cpus,
            memory=lim.memory,
            pids_limit=lim.pids,
            timeout=lim.test_timeout,
            workdir=TESTBED,
            network=False,
            extra_labels=extra,
        )
        fields.update(overrides)
        return cls(**fields)
