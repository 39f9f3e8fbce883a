"""The shell wire protocol: how commands reach a bash in the container and how their ends are found.

The bash programs are package data (`*.sh` beside this module): `cgroup.sh` (the cgroup counters, read
with builtins only), `session.sh` (the persistent session's prelude), `once.sh` (`run_once`'s main
process), `run.sh` (one `docker exec`), `kill_tree.sh` and `kill_all.sh` (ending what a command left).

`ShellSession` keeps one `bash` open on the exec attach socket; each command is sent as a quoted string,
evaluated in that shell (so cwd, variables and functions persist), and its end is marked by a status
line that starts with a per-command random token and carries the exit code and the cgroup counters.
Output (stdout and stderr interleaved) is streamed: only a head and a tail are kept, so printing
gigabytes costs no memory.
"""

from __future__ import annotations

import secrets
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources

import docker

from harness.sandbox.results import ExecResult, OutputBuffer, SandboxError, command_result

SCRIPTS = ("cgroup.sh", "session.sh", "once.sh", "run.sh", "kill_tree.sh", "kill_all.sh")


@cache
def script(name: str) -> str:
    """The text of one of the package's bash programs; those that report counters come with
    `cgroup.sh`'s function in front."""
    if name not in SCRIPTS:
        raise ValueError(f"no sandbox script {name!r}; expected one of {', '.join(SCRIPTS)}")
    text = resources.files("harness.sandbox").joinpath(name).read_text(encoding="utf-8")
    return script("cgroup.sh") + text if name in ("session.sh", "once.sh", "run.sh") else text


def bash_quote(text: str) -> str:
    """Quote `text` as a bash $'...' string (no process is spawned to decode it)."""
    out = ["$'"]
    for ch in text:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == "\n":
            out.append("\\n")
        elif o < 32 or o == 127:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    out.append("'")
    return "".join(out)


def new_token(kind: str) -> str:
    """A status-line token a command cannot guess."""
    return f"__SRL_{kind}_{secrets.token_hex(8)}"


@dataclass(frozen=True)
class Status:
    """A status line's fields after its token: the exit status and the cgroup counters after the
    command (oom kills, pids refusals), whether the pids cgroup was full, and (for `run.sh`) the
    counters before it."""

    exit_code: int
    oom: int
    pids: int
    pids_full: bool = False
    before: tuple[int, int] | None = None

    @classmethod
    def parse(cls, fields: list[bytes] | list[str]) -> Status | None:
        """None when the line is not a complete status line."""
        f = [x.decode() if isinstance(x, bytes) else x for x in fields]
        if len(f) < 3 or not all(x.lstrip("-").isdigit() for x in f[:3]):
            return None
        before = (int(f[4]), int(f[5])) if len(f) >= 6 and f[4].isdigit() and f[5].isdigit() else None
        return cls(int(f[0]), int(f[1]), int(f[2]), len(f) >= 4 and f[3] == "1", before)


def split_status(raw: bytes, token: str) -> tuple[bytes, Status | None, int]:
    """Cut the status line (`\\n<token> ...` at the end) off a command's output: (output, its status,
    length of what was cut). A status line the command printed itself has another token."""
    head, found, trailer = raw.rpartition(f"\n{token} ".encode())
    if not found:
        return raw, None, 0
    return head, Status.parse(trailer.split()), len(found) + len(trailer)


class SessionEnded(SandboxError):
    """The session's shell ended during a command (the command ran `exit`, or the shell was killed):
    what the command printed until then, and the shell's exit status."""

    def __init__(self, output: OutputBuffer, exit_code: int | None, timed_out: bool, duration: float) -> None:
        super().__init__("the shell session ended (the command ran `exit`, or the shell was killed)")
        self.output, self.exit_code, self.timed_out, self.duration = output, exit_code, timed_out, duration


def demux(pending: bytearray) -> bytes:
    """Take the complete frames of Docker's multiplexed stream (8-byte headers) off `pending`; return
    their payload (stdout and stderr interleaved in arrival order)."""
    out = bytearray()
    while len(pending) >= 8:
        size = struct.unpack(">I", pending[4:8])[0]
        if len(pending) < 8 + size:
            break
        out += pending[8 : 8 + size]
        del pending[: 8 + size]
    return bytes(out)


class ShellSession:
    """A bash process inside a container, kept open on the exec attach socket."""

    def __init__(
        self,
        client: docker.DockerClient,
        container_id: str,
        user: str | None,
        workdir: str | None,
        env: dict[str, str],
        output_limit: int,
    ) -> None:
        self.client = client
        self.container_id = container_id
        self.user = user
        self.workdir = workdir
        self.env = env
        self.output_limit = output_limit
        self.pid: int | None = None
        self._sock: socket.socket | None = None
        self._pending = bytearray()
        self._lock = threading.Lock()
        self.counters = (0, 0)  # the cgroups' (oom kills, pids refusals) after the last command
        self.pids_full = False

    # -- transport ---------------------------------------------------------------------------
    def start(self) -> None:
        api = self.client.api
        exec_id = api.exec_create(
            self.container_id,
            ["bash", "--noprofile", "--norc"],
            stdin=True,
            stdout=True,
            stderr=True,
            tty=False,
            user=self.user or "",
            workdir=self.workdir,
            environment=self.env or None,
        )["Id"]
        self._exec_id = exec_id
        wrapped = api.exec_start(exec_id, socket=True)
        sock = getattr(wrapped, "_sock", wrapped)
        sock.setblocking(True)
        self._sock = sock
        self._wrapped = wrapped
        self._pending.clear()
        self._send(script("session.sh").encode())
        line = self._read_until_line(b"__SRL_READY__ ", deadline=time.monotonic() + 30)
        self.pid = int(line.split()[1])
        self.counters = self._read_counters()

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        self._sock.sendall(data)

    def _recv_frames(self, timeout: float) -> bytes | None:
        """Payload bytes of whatever arrived within `timeout` (b"" on timeout); None at EOF."""
        assert self._sock is not None
        r, _, _ = select.select([self._sock], [], [], max(timeout, 0))
        if not r:
            return b""
        chunk = self._sock.recv(1 << 16)
        if not chunk:
            return None
        self._pending += chunk
        return demux(self._pending)

    def _read_until_line(self, prefix: bytes, deadline: float) -> str:
        buf = bytearray()
        while time.monotonic() < deadline:
            data = self._recv_frames(deadline - time.monotonic())
            if data is None:
                raise SandboxError(f"the shell session ended early: {bytes(buf)[-500:]!r}")
            buf += data
            idx = buf.find(prefix)
            if idx >= 0:
                end = buf.find(b"\n", idx)
                if end >= 0:
                    return buf[idx:end].decode()
        raise SandboxError(f"the shell session did not start: {bytes(buf)[-500:]!r}")

    def _read_counters(self) -> tuple[int, int]:
        tok = new_token("C")
        self._send(f"__srl_cg 2>/dev/null; printf '%s %s\\n' {tok} \"$__srl_c\"\n".encode())
        line = self._read_until_line(tok.encode(), deadline=time.monotonic() + 10)
        parts = line.split()
        return (int(parts[1]), int(parts[2])) if len(parts) >= 3 else (0, 0)

    # -- commands ----------------------------------------------------------------------------
    def run(self, command: str, timeout: float, kill: Callable[[int | None], None]) -> ExecResult:
        """Run `command` in the session; on timeout call `kill(pid)` to end its process groups."""
        with self._lock:
            token = new_token("DONE")
            self._send(f"__srl_run {bash_quote(command)} {token}\n".encode())
            start = time.monotonic()
            buf = OutputBuffer(self.output_limit)
            status_line, timed_out = self._read_to_status(token, start + timeout, buf, kill)
            duration = time.monotonic() - start
            if status_line is None:
                raise SessionEnded(buf, self._shell_exit_code(), timed_out, duration)
            status = Status.parse(status_line.split()[1:])
            if status is None:
                raise SandboxError(f"the shell sent a broken status line: {status_line[:200]!r}")
            # the pids cgroup still full after the command (at most one pid free: the one its last child
            # just gave back): what it left running (a fork bomb) takes every pid, nothing else can run
            self.pids_full = status.pids_full
            before, self.counters = self.counters, (status.oom, status.pids)
            raw, truncated = buf.result()
            return command_result(
                exit_code=status.exit_code,
                output=raw,
                truncated=truncated,
                output_bytes=buf.total,
                duration=duration,
                timed_out=timed_out,
                oom=status.oom > before[0],
                pids=status.pids > before[1],
            )

    def _shell_exit_code(self) -> int | None:
        """The exit status of the session's shell once it has ended (None if the daemon does not say)."""
        for _ in range(20):
            try:
                info = self.client.api.exec_inspect(self._exec_id)
            except docker.errors.APIError:
                return None
            if not info.get("Running"):
                return info.get("ExitCode")
            time.sleep(0.05)
        return None

    def _read_to_status(
        self, token: str, deadline: float, buf: OutputBuffer, kill: Callable[[int | None], None]
    ) -> tuple[bytes | None, bool]:
        """Stream the command's output into `buf` up to its status line; returns that line (None when
        the shell ended first) and whether the command was killed at `deadline`."""
        marker = b"\n" + token.encode() + b" "
        window = bytearray()  # recent bytes, to find the marker across chunk borders
        timed_out = False
        while True:
            now = time.monotonic()
            if not timed_out and now >= deadline:
                timed_out = True
                kill(self.pid)
                deadline = now + 10  # grace period for the shell to report back
            elif timed_out and now >= deadline:
                raise SandboxError("the shell did not recover after killing a timed-out command")
            data = self._recv_frames(min(deadline - now, 1.0))
            if data is None:
                buf.add(bytes(window))
                return None, timed_out
            if not data:
                continue
            window += data
            idx = window.find(marker)
            if idx >= 0:
                end = window.find(b"\n", idx + len(marker))
                if end < 0:
                    continue  # status line not complete yet
                buf.add(bytes(window[:idx]))
                return bytes(window[idx + 1 : end]), timed_out  # nothing should follow it
            keep = len(marker) + 64
            if len(window) > keep:
                buf.add(bytes(window[:-keep]))
                del window[:-keep]
