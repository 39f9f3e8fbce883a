"""What a command in a sandbox gives back: `ExecResult`, the limit it hit, and its bounded output.

Every way of running a command (`Sandbox.exec` in the session, `Sandbox.run` with a fresh `docker exec`,
`Sandbox.run_once` as the container's main process) ends in `command_result`, so all three report
limits alike: a timed-out command has `exit_code == -1`, `timed_out=True` and `limit="timeout"`; a
memory or pids cgroup that killed or refused something during the command gives `limit="oom"` /
`"pids"` (the cause wins over the timeout it may lead to); a capped output gives `truncated=True` and,
when nothing else was hit, `limit="output"`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from trajectories.errors import SrlSweError

Limit = Literal["timeout", "oom", "pids", "output"]

#: exit code of a command the harness killed at its timeout (it has no exit status of its own)
TIMED_OUT_EXIT = -1


class SandboxError(SrlSweError, RuntimeError):
    """The sandbox could not be started or used; the message says why and what to do."""


class ExecResult(BaseModel):
    """The typed result of one command."""

    model_config = ConfigDict(extra="forbid")

    exit_code: int
    output: str
    truncated: bool = False
    timed_out: bool = False
    duration: float = 0.0
    limit: Limit | None = None
    restarted: bool = False
    output_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def limit_hit(*, oom: bool, pids: bool, timed_out: bool, truncated: bool) -> Limit | None:
    """Which limit a command hit, the cause first: a fork bomb or a memory hog that then hangs is a
    pids / oom case, not a timeout."""
    if oom:
        return "oom"
    if pids:
        return "pids"
    if timed_out:
        return "timeout"
    return "output" if truncated else None


class OutputBuffer:
    """Keeps the first and last `limit/2` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.half = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.half:
                del self.tail[: len(self.tail) - self.half]

    def result(self) -> tuple[bytes, bool]:
        tail = bytes(self.tail[-self.half :]) if self.half else b""
        kept = len(self.head) + len(tail)
        if kept >= self.total:
            return bytes(self.head) + bytes(self.tail), False
        skipped = self.total - kept
        marker = f"\n[... {skipped} bytes of output truncated ...]\n".encode()
        return bytes(self.head) + marker + tail, True


def command_result(
    *,
    exit_code: int,
    output: bytes,
    truncated: bool,
    output_bytes: int,
    duration: float,
    timed_out: bool,
    oom: bool = False,
    pids: bool = False,
    restarted: bool = False,
) -> ExecResult:
    """The one place a command's outcome becomes an `ExecResult` (see the module docstring)."""
    return ExecResult(
        exit_code=TIMED_OUT_EXIT if timed_out else exit_code,
        output=output.decode("utf-8", errors="replace"),
        truncated=truncated,
        timed_out=timed_out,
        duration=duration,
        limit=limit_hit(oom=oom, pids=pids, timed_out=timed_out, truncated=truncated),
        restarted=restarted,
        output_bytes=output_bytes,
    )
