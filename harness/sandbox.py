"""Sandboxes: a Docker container with hard limits (lifecycle) and a persistent shell in it (execution).

    with Sandbox(SandboxConfig(image="srl-base:bookworm", memory="512m", timeout=30)) as sb:
        sb.exec("cd /tmp; export X=1")
        r = sb.exec("echo $X; pwd")      # -> ExecResult(exit_code=0, output="1\n/tmp\n", ...)

Lifecycle (`Sandbox`): which container, its limits, labels and guaranteed removal (on exit, on an
exception, on Ctrl-C, and at interpreter exit for anything still open).
Execution (`ShellSession`): one `bash` kept open on the exec attach socket; each command is sent as a
quoted string, evaluated in that shell (so cwd, variables and functions persist), and its end is marked
by a per-command random sentinel carrying the exit code. Output (stdout and stderr interleaved) is
streamed: only a head and a tail are kept, so printing gigabytes costs no memory.
"""

from __future__ import annotations

import atexit
import io
import os
import secrets
import select
import socket
import struct
import tarfile
import threading
import time
from pathlib import Path
from typing import Literal

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from pydantic import BaseModel, ConfigDict, Field

from harness.docker_env import LABEL, get_client, labels

Limit = Literal["timeout", "oom", "pids", "output"]


class SandboxError(RuntimeError):
    """The sandbox could not be started or used; the message says why and what to do."""


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


def _limit_hit(*, oom: bool, pids: bool, timed_out: bool, truncated: bool) -> Limit | None:
    """Which limit a command hit, the cause first: a fork bomb or a memory hog that then hangs is a
    pids / oom case, not a timeout."""
    if oom:
        return "oom"
    if pids:
        return "pids"
    if timed_out:
        return "timeout"
    return "output" if truncated else None


def _bash_quote(text: str) -> str:
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


class _OutputBuffer:
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


# The session's prelude: job control puts every command in its own process group (so a timeout kills
# the whole group), and the counters of the memory and pids cgroups are read with builtins only, into
# a variable (`printf -v`): no command substitution, so the status line needs no fork and still comes
# when a fork bomb has filled the pids cgroup.
_CGROUP_FN = r"""__srl_cg() { local l o=0 p=0 d=/sys/fs/cgroup/pids n m f=0
  if [ -r /sys/fs/cgroup/memory/memory.oom_control ]; then while read -r l; do case $l in oom_kill\ *) o=${l#oom_kill };; esac; done < /sys/fs/cgroup/memory/memory.oom_control
  elif [ -r /sys/fs/cgroup/memory.events ]; then while read -r l; do case $l in oom_kill\ *) o=${l#oom_kill };; esac; done < /sys/fs/cgroup/memory.events; fi
  [ -r $d/pids.events ] || d=/sys/fs/cgroup
  if [ -r $d/pids.events ]; then read -r l < $d/pids.events; p=${l#max }
    read -r n < $d/pids.current; read -r m < $d/pids.max; [ "$m" != max ] && [ $((n + 1)) -ge "$m" ] && f=1; fi
  printf -v __srl_c '%s %s %s' "$o" "$p" "$f"; }
"""
_PRELUDE = (
    r"""
set -m
export PAGER=cat GIT_PAGER=cat TERM=dumb PIP_NO_INPUT=1
"""
    + _CGROUP_FN
    + r"""__srl_inner() { eval "$1"; }
trap 'return 137' USR1
__srl_run() { local __c=$1 __t=$2 __rc; { __srl_inner "$__c"; } </dev/null 2>&1; __rc=$?
  __srl_cg 2>/dev/null; printf '\n%s %s %s\n' "$__t" "$__rc" "$__srl_c"; }
printf '__SRL_READY__ %s\n' "$$"
"""
)


# `Sandbox.run_once`: the command runs in a subshell (an `exit` in it ends only the subshell), then the
# main shell prints a trailer with its exit status and the oom / pids counters of the container's cgroups.
_ONCE = r"""export PAGER=cat GIT_PAGER=cat TERM=dumb PIP_NO_INPUT=1
{prelude}
( eval {command} ) </dev/null 2>&1
__rc=$?
__srl_cg 2>/dev/null; printf '\n%s %s %s\n' {token} "$__rc" "$__srl_c"
"""


def _demux(pending: bytearray) -> bytes:
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
        self._counters = (0, 0)
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
        wrapped = api.exec_start(exec_id, socket=True)
        sock = getattr(wrapped, "_sock", wrapped)
        sock.setblocking(True)
        self._sock = sock
        self._wrapped = wrapped
        self._pending.clear()
        self._send(_PRELUDE.encode())
        line = self._read_until_line(b"__SRL_READY__ ", deadline=time.monotonic() + 30)
        self.pid = int(line.split()[1])
        self._counters = self._read_counters()

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
        return _demux(self._pending)

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
        tok = "__SRL_C_" + secrets.token_hex(6)
        self._send(f"__srl_cg 2>/dev/null; printf '%s %s\\n' {tok} \"$__srl_c\"\n".encode())
        line = self._read_until_line(tok.encode(), deadline=time.monotonic() + 10)
        parts = line.split()
        return (int(parts[1]), int(parts[2])) if len(parts) >= 3 else (0, 0)

    # -- commands ----------------------------------------------------------------------------
    def run(self, command: str, timeout: float, kill: callable) -> ExecResult:
        """Run `command` in the session; on timeout call `kill(pid)` to end its process groups."""
        with self._lock:
            token = "__SRL_DONE_" + secrets.token_hex(8)
            marker = b"\n" + token.encode() + b" "
            self._send(f"__srl_run {_bash_quote(command)} {token}\n".encode())
            start = time.monotonic()
            deadline = start + timeout
            buf = _OutputBuffer(self.output_limit)
            window = bytearray()  # recent bytes, to find the marker across chunk borders
            timed_out = False
            status_line: bytes | None = None
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
                    raise SandboxError("the shell session ended (the container may have been killed)")
                if not data:
                    continue
                window += data
                idx = window.find(marker)
                if idx >= 0:
                    end = window.find(b"\n", idx + len(marker))
                    if end < 0:
                        continue  # status line not complete yet
                    buf.add(bytes(window[:idx]))
                    status_line = bytes(window[idx + 1 : end])
                    rest = window[end + 1 :]
                    if rest:
                        self._pending[:0] = b""  # nothing should follow; drop stray bytes
                    break
                keep = len(marker) + 64
                if len(window) > keep:
                    buf.add(bytes(window[:-keep]))
                    del window[:-keep]
            duration = time.monotonic() - start
            fields = status_line.decode().split()
            rc = int(fields[1])
            counters = (int(fields[2]), int(fields[3])) if len(fields) >= 4 else self._counters
            # the pids cgroup still full after the command (at most one pid free: the one its last child
            # just gave back): what it left running (a fork bomb) takes every pid, nothing else can run
            self.pids_full = len(fields) >= 5 and fields[4] == "1"
            raw, truncated = buf.result()
            limit = _limit_hit(
                oom=counters[0] > self._counters[0],
                pids=counters[1] > self._counters[1],
                timed_out=timed_out,
                truncated=truncated,
            )
            if rc != 0 or timed_out:
                self._counters = counters
            return ExecResult(
                exit_code=rc,
                output=raw.decode("utf-8", errors="replace"),
                truncated=truncated,
                timed_out=timed_out,
                duration=duration,
                limit=limit,
                output_bytes=buf.total,
            )


# Kill every descendant of the session shell, and their process groups, but not the shell itself;
# SIGUSR1 first makes the shell abandon the rest of the command (its trap returns from the eval).
_KILL_TREE = r"""
root=$1; pids=" $root "; changed=1
kill -USR1 $root 2>/dev/null
while [ $changed = 1 ]; do changed=0
  for d in /proc/[0-9]*; do p=${d#/proc/}; case "$pids" in *" $p "*) continue;; esac
    s=$(cat $d/stat 2>/dev/null) || continue; s=${s##*) }; set -- $s
    case "$pids" in *" $2 "*) pids="$pids$p "; changed=1;; esac
  done
done
rootpg=$(s=$(cat /proc/$root/stat); s=${s##*) }; set -- $s; echo $3)
for p in $pids; do [ $p = $root ] && continue
  pg=$(s=$(cat /proc/$p/stat 2>/dev/null) && { s=${s##*) }; set -- $s; echo $3; })
  [ -n "$pg" ] && [ "$pg" != "$rootpg" ] && kill -9 -- -$pg 2>/dev/null
  kill -9 $p 2>/dev/null
done
exit 0
"""

_LIVE: dict[str, Sandbox] = {}
_LIVE_LOCK = threading.Lock()


class _Holder:
    """A container that only holds an offline network namespace (loopback only) for sandboxes to join.

    It runs ``cat`` on a stdin that this process keeps attached with ``StdinOnce``: when the process
    ends, even by SIGKILL, the daemon closes that stdin, ``cat`` ends and the container removes itself."""

    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.client = client
        self.daemon = client.api.base_url
        api = client.api
        host = api.create_host_config(
            network_mode="none",
            auto_remove=True,
            init=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=16,
            mem_limit="32m",
            log_config={"type": "none", "config": {}},
        )
        self.id = api.create_container(
            image,
            command=["cat"],
            detach=False,  # with stdin_open: StdinOnce
            stdin_open=True,
            user="65534",
            labels=labels(kind="netns", pid=str(os.getpid()), host=socket.gethostname()),
            host_config=host,
        )["Id"]
        try:
            self._stdin = api.attach_socket(self.id, params={"stdin": 1, "stream": 1})
            api.start(self.id)
        except BaseException:
            self.remove()
            raise

    def running(self) -> bool:
        try:
            return bool(self.client.api.inspect_container(self.id)["State"]["Running"])
        except (NotFound, APIError):
            return False

    def remove(self) -> None:
        try:
            self.client.api.remove_container(self.id, force=True)
        except (NotFound, APIError):
            pass
        self.close_stdin()

    def close_stdin(self) -> None:
        """This process's end of the holder's stdin (the last one closed ends the holder)."""
        try:
            self._stdin.close()
        except (AttributeError, OSError):
            pass


class _NetnsPool:
    """Idle offline network namespaces of this process, each lent to one sandbox at a time.

    Creating a network namespace (and tearing it down) costs the kernel and the daemon ~70 ms of wall
    and CPU time per container, as much as the rest of a container start. A sandbox without network
    instead joins an idle holder's namespace (`network_mode="container:<holder>"`): loopback only, like
    `"none"`; never two running sandboxes in one namespace, so concurrent test runs cannot reach each
    other or collide on a port. A namespace goes back to the pool only when its sandbox's processes are
    gone. Only sandboxes whose processes run as a non-root user join one: the namespace's /etc/hosts
    is the holder's, which a non-root user cannot change."""

    def __init__(self) -> None:
        self._idle: list[_Holder] = []
        self._all: dict[str, _Holder] = {}
        self._lock = threading.Lock()
        self._broken: set[str] = set()  # images a holder could not start from
        self._making = 0  # holders being made
        self._asked = 0  # leases that found no idle holder
        self._generation = 0  # bumped by close(): a holder made across a close is not kept

    def lease(self, client: docker.DockerClient, image: str) -> _Holder | None:
        """An idle, running holder of this daemon, or None: then, from the second such sandbox of the
        process on, one is made in the background for the next (making one costs more than the namespace
        one sandbox saves, so nobody waits for it, and a process that starts one sandbox makes none)."""
        while True:
            with self._lock:
                mine = [h for h in self._idle if h.daemon == client.api.base_url]
                holder = mine[-1] if mine else None
                if holder is None:
                    self._asked += 1
                    if self._asked > 1 and not self._making:  # a one-sandbox process makes none
                        self._spawn(client, image)
                    return None
                self._idle.remove(holder)
            if holder.running():  # one cheap call; a holder removed from outside is replaced
                return holder
            self.discard(holder)

    def prewarm(self, client: docker.DockerClient, image: str | None, n: int) -> None:
        """Start making holders in the background until `n` are idle or being made (e.g. one per worker,
        while the caller is still loading and planning)."""
        with self._lock:
            for _ in range(n - len(self._idle) - self._making):
                self._spawn(client, image)

    def _spawn(self, client: docker.DockerClient, image: str | None) -> None:
        """(Under the lock.) Make one holder in a thread; an image that failed once is not tried again."""
        self._making += 1
        args = (client, image, self._generation)
        threading.Thread(target=self._make, args=args, name="srl-netns").start()

    def _make(self, client: docker.DockerClient, image: str | None, generation: int) -> None:
        from harness.base_image import default_tag

        holder = None
        # the project's base image when there is one (a holder then never shows up as a container of
        # some task's image), else the sandbox's own
        for candidate in dict.fromkeys([default_tag(), image]):
            if candidate is None or candidate in self._broken:
                continue
            try:
                holder = _Holder(client, candidate)
                break
            except (APIError, docker.errors.DockerException, OSError):
                with self._lock:
                    self._broken.add(candidate)
        if holder is None:
            with self._lock:
                self._making -= 1
            return
        with self._lock:
            self._making -= 1
            if generation == self._generation:
                self._all[holder.id] = holder
                self._idle.append(holder)
                return
        holder.remove()

    def release(self, holder: _Holder) -> None:
        with self._lock:
            if holder.id in self._all:
                self._idle.append(holder)

    def discard(self, holder: _Holder) -> None:
        with self._lock:
            self._all.pop(holder.id, None)
            if holder in self._idle:
                self._idle.remove(holder)
        holder.remove()

    def close(self) -> None:
        """Remove every holder (at exit; sandboxes still in one keep it alive until they are removed)."""
        with self._lock:
            self._generation += 1
            holders = list(self._all.values())
            self._all.clear()
            self._idle.clear()
        for holder in holders:
            holder.remove()

    def forget(self) -> None:
        """In a forked child: the parent's holders are the parent's (never lent here, never removed here)."""
        for holder in self._all.values():
            holder.close_stdin()  # the child's copy only: the parent's stays open
        self.__init__()


_NETNS = _NetnsPool()


def _after_fork_in_child() -> None:
    # a forked child starts with no sandboxes and no namespaces of its own: at its exit it must not remove
    # the parent's, and it must not lend the parent's namespaces to a second sandbox at once
    global _LIVE_LOCK
    _NETNS.forget()
    _LIVE.clear()
    _LIVE_LOCK = threading.Lock()  # another thread of the parent may have held it


os.register_at_fork(after_in_child=_after_fork_in_child)


def prewarm_netns(client: docker.DockerClient, n: int, image: str | None = None) -> None:
    """Have `n` offline network namespaces ready for the sandboxes about to start (in the background;
    made from the project's base image, else from `image`)."""
    _NETNS.prewarm(client, image, n)


def close_netns_pool() -> None:
    """Remove this process's idle offline network namespaces (done at exit anyway)."""
    _NETNS.close()


def _close_all() -> None:
    for sb in list(_LIVE.values()):
        sb.close()
    _NETNS.close()


atexit.register(_close_all)


class Sandbox:
    """A labelled container with limits, a persistent shell session and file helpers."""

    def __init__(
        self, config: SandboxConfig | None = None, client: docker.DockerClient | None = None, **overrides
    ) -> None:
        base = config or SandboxConfig()
        self.config = base.model_copy(update=overrides) if overrides else base
        self.client = client
        self.container = None
        self.session: ShellSession | None = None
        self.user: str | None = None
        self._closed = False  # closed (e.g. on Ctrl-C, from another thread) before or while starting
        self._netns: _Holder | None = None  # the offline network namespace it joined, if any

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> Sandbox:
        """Start the container (idle under `init`) and open the persistent shell session in it."""
        self._create(["sleep", "infinity"], user="root")
        try:
            self._start_container()
            self.session = ShellSession(
                self.client,
                self.container.id,
                self.user,
                self.config.workdir,
                self.config.env,
                self.config.output_limit,
            )
            self.session.start()
        except BaseException:
            self.close()
            raise
        return self

    def run_once(self, command: str, timeout: float | None = None) -> ExecResult:
        """Start the sandbox with `command` as the container's main process and wait for it: one
        command, no persistent session (no `docker exec`, the least work for the daemon; what `srl
        evaluate` uses). Output, limits and the result are those of `exec`; on timeout the container is
        killed. The stopped container stays until `close()`, so `read_file` and `copy_out` still work.
        """
        if self.container is not None:
            raise SandboxError("run_once starts the sandbox; this one is already started")
        timeout = timeout or self.config.timeout
        token = "__SRL_END_" + secrets.token_hex(8)
        script = _ONCE.format(prelude=_CGROUP_FN, command=_bash_quote(command), token=token)
        self._create(["bash", "--noprofile", "--norc", "-c", script], user=None)
        try:
            api = self.client.api
            wrapped = api.attach_socket(self.container.id, params={"stdout": 1, "stderr": 1, "stream": 1})
            sock = getattr(wrapped, "_sock", wrapped)
            sock.setblocking(True)
            try:
                start = time.monotonic()
                self._start_container()
                buf, timed_out = self._drain(sock, start + timeout, token)
            finally:
                sock.close()
            duration = time.monotonic() - start
            rc = api.wait(self.container.id, timeout=30)["StatusCode"]
            self._release_netns()  # its processes are gone
        except BaseException:
            self.close()
            raise
        raw, truncated = buf.result()
        head, found, trailer = raw.rpartition(f"\n{token} ".encode())
        oom_killed = False
        if not found:  # the main shell itself was killed (no status line with the cgroup's counters)
            try:
                oom_killed = bool(self.client.api.inspect_container(self.container.id)["State"].get("OOMKilled"))
            except (NotFound, APIError):
                pass
        fields = trailer.split() if found else []
        total = buf.total
        if found:
            raw, total = head, total - len(found) - len(trailer)
        if len(fields) >= 3 and fields[0].lstrip(b"-").isdigit():
            rc = int(fields[0])
        oom = oom_killed or (len(fields) >= 3 and fields[1] not in (b"0", b""))
        pids = len(fields) >= 3 and fields[2] not in (b"0", b"")
        limit = _limit_hit(oom=oom, pids=pids, timed_out=timed_out, truncated=truncated)
        return ExecResult(
            exit_code=-1 if timed_out else rc,
            output=raw.decode("utf-8", errors="replace"),
            truncated=truncated,
            timed_out=timed_out,
            duration=duration,
            limit=limit,
            output_bytes=total,
        )

    def _drain(self, sock: socket.socket, deadline: float, token: str) -> tuple[_OutputBuffer, bool]:
        """Read the main process's output until it ends (EOF) or the deadline (then kill it)."""
        buf = _OutputBuffer(self.config.output_limit + 200)  # room for the status trailer
        pending = bytearray()
        timed_out = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not timed_out:
                timed_out = True
                try:
                    self.container.kill()
                except (NotFound, APIError):
                    pass
                deadline = time.monotonic() + 30  # the output ends once the container is dead
                continue
            if remaining <= 0:
                break
            r, _, _ = select.select([sock], [], [], min(remaining, 1.0))
            if not r:
                continue
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            pending += chunk
            buf.add(_demux(pending))
        return buf, timed_out

    def _create(self, command: list[str], user: str | None) -> None:
        """Create the labelled container with the configured limits (not started); registered at once,
        so nothing leaks. `user=None`: the sandbox's user (`srl` on the project's images)."""
        cfg = self.config
        if self._closed:
            raise SandboxError("the sandbox was closed; start a new one")
        self.client = self.client or get_client()
        try:
            image = self.client.images.get(cfg.image)
        except ImageNotFound:
            hint = (
                "`srl image base`"
                if cfg.image.startswith("srl-base")
                else "`srl task build <ID>` or `docker build`"
            )
            raise SandboxError(f"image {cfg.image!r} is not on this machine; build it with {hint}") from None
        if cfg.user is None:
            own = (image.labels or {}).get("srl-swe.kind") in {"base", "env", "instance"}
            self.user = "srl" if own else None
        else:
            self.user = cfg.user
        mem = cfg.memory
        kwargs = dict(
            image=cfg.image,
            command=command,
            detach=True,
            init=True,
            labels=labels(pid=str(os.getpid()), host=socket.gethostname(), **cfg.extra_labels),
            nano_cpus=int(cfg.cpus * 1e9),
            mem_limit=mem,
            memswap_limit=mem,
            pids_limit=cfg.pids_limit,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            network_mode=self._network_mode(),
            working_dir=cfg.workdir,
            environment=cfg.env or None,
            user=user or self.user or "root",
            # output travels over the attach socket only: the daemon's log driver would write (and
            # JSON-encode) every line of a chatty main process to disk
            log_config={"type": "none", "config": {}},
        )
        # registered as soon as it exists (so nothing leaks), started outside the lock (so sandboxes
        # of other threads start in parallel: starting takes the daemon a few hundred ms)
        with _LIVE_LOCK:
            try:
                self.container = self.client.containers.create(**kwargs)
            except APIError as exc:
                self._release_netns()
                raise SandboxError(
                    f"could not start a sandbox from {cfg.image!r}: {exc.explanation or exc}"
                ) from exc
            _LIVE[self.container.id] = self
        if self._closed:  # closed from another thread while the container was being created
            self.close()
            raise SandboxError("the sandbox was closed while it was starting")

    def _network_mode(self) -> str:
        cfg = self.config
        if cfg.network:
            return "bridge"
        user = self.user  # the user of every command from outside the harness (it runs a few as root)
        if not cfg.reuse_netns or user in (None, "", "root", "0") or user.startswith(("0:", "root:")):
            return "none"
        self._netns = _NETNS.lease(self.client, cfg.image)
        return f"container:{self._netns.id}" if self._netns is not None else "none"

    def _release_netns(self) -> None:
        holder, self._netns = self._netns, None
        if holder is not None:
            _NETNS.release(holder)

    def _start_container(self) -> None:
        try:
            self.container.start()
        except APIError as exc:
            if self._netns is not None:  # its holder died between create and start: not lent again
                _NETNS.discard(self._netns)
                self._netns = None
            raise SandboxError(
                f"could not start a sandbox from {self.config.image!r}: {exc.explanation or exc}"
            ) from exc

    def close(self) -> None:
        """Remove the container (idempotent; safe from other threads, signal handlers and atexit).

        A sandbox closed while it is being created is removed as soon as its container exists (the
        start then fails), and a closed sandbox cannot be started again. The container stays registered
        for the interpreter-exit cleanup until its removal has returned, so a removal cut short at exit
        (a background thread) is done again there."""
        self._closed = True
        if self.session is not None:
            self.session.close()
            self.session = None
        container = self.container
        if container is None:
            self._release_netns()
            return
        try:
            container.remove(force=True)
        except NotFound:
            pass
        except APIError:  # e.g. "removal already in progress" from a concurrent close, which releases
            pass
        else:
            self._release_netns()  # its processes are gone
        with _LIVE_LOCK:
            _LIVE.pop(container.id, None)
        self.container = None

    @property
    def id(self) -> str:
        if self.container is None:
            raise SandboxError("the sandbox is not running")
        return self.container.id

    # -- execution ---------------------------------------------------------------------------
    def exec(self, command: str, timeout: float | None = None) -> ExecResult:
        """Run `command` in the persistent shell session (cwd and environment persist)."""
        if self.session is None:
            raise SandboxError("the sandbox is not running")
        timeout = timeout or self.config.timeout
        try:
            res = self.session.run(command, timeout, self._kill_tree)
        except SandboxError:
            # the shell died or hung: end whatever it left running, start a fresh session, say so
            before = self.session._counters
            self._restart_session()
            after = self.session._counters
            limit: Limit = "oom" if after[0] > before[0] else "pids" if after[1] > before[1] else "timeout"
            return ExecResult(
                exit_code=-1,
                output=f"[the command hit the {limit} limit; the shell session was restarted]\n",
                timed_out=True,
                limit=limit,
                restarted=True,
                duration=timeout,
            )
        if res.limit == "pids" and self.session.pids_full:
            # what the command left running still takes every pid: the same clean-up, after the result
            self._restart_session()
            note = "[the command hit the pids limit; the shell session was restarted]\n"
            res = res.model_copy(update={"output": res.output + note, "restarted": True})
        return res

    def _restart_session(self) -> None:
        """End the session and every process of its user, then open a fresh session."""
        self.session.close()
        self._kill_all()
        self.session = ShellSession(
            self.client,
            self.id,
            self.user,
            self.config.workdir,
            self.config.env,
            self.config.output_limit,
        )
        self.session.start()

    def _kill_all(self) -> None:
        """Signal every process of the session's user (not init): what a hung session leaves behind.

        One pass of ``kill -9 -1`` can miss children a fork bomb makes meanwhile, so the signal is sent
        again until a pass finds no process left (``kill`` then fails). Under a fork bomb the pids cgroup
        may refuse the exec itself, so that is retried a few times."""
        until_none_left = (
            "n=0; while kill -9 -1 2>/dev/null; do n=$((n+1)); [ $n -ge 5000 ] && exit 1; done; exit 0"
        )
        for _ in range(20):
            try:
                res = self.container.exec_run(["sh", "-c", until_none_left], user=self.user or "root")
            except APIError:
                res = None
            if res is not None and res.exit_code == 0:
                probe = self.container.exec_run(["sh", "-c", "echo ok"], user=self.user or "root")
                if probe.exit_code == 0:
                    return
            time.sleep(0.25)

    def _kill_tree(self, pid: int | None) -> None:
        # run as the session's user: with all capabilities dropped, root may not signal other users
        if pid is None:
            return
        self.client.api.exec_start(
            self.client.api.exec_create(
                self.id, ["sh", "-c", _KILL_TREE, "sh", str(pid)], user=self.user or "root"
            )["Id"]
        )

    def run(
        self,
        command: str | list[str],
        timeout: float | None = None,
        user: str | None = None,
        workdir: str | None = None,
    ) -> ExecResult:
        """Run one command with a fresh `docker exec` (outside the session; no state is shared)."""
        argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
        t = timeout or self.config.timeout
        argv = ["timeout", "-s", "KILL", str(int(max(1, t))), *argv]
        start = time.monotonic()
        res = self.container.exec_run(
            argv, user=user or self.user or "", workdir=workdir or self.config.workdir, demux=False
        )
        raw = res.output or b""
        buf = _OutputBuffer(self.config.output_limit)
        buf.add(raw)
        data, truncated = buf.result()
        timed_out = res.exit_code == 137 and time.monotonic() - start >= t - 0.5
        return ExecResult(
            exit_code=res.exit_code,
            output=data.decode("utf-8", errors="replace"),
            truncated=truncated,
            timed_out=timed_out,
            duration=time.monotonic() - start,
            limit="timeout" if timed_out else ("output" if truncated else None),
            output_bytes=len(raw),
        )

    # -- files -------------------------------------------------------------------------------
    def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        payload = data.encode() if isinstance(data, str) else data
        p = Path(path)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(p.name)
            info.size = len(payload)
            info.mode = mode
            info.mtime = int(time.time())
            if self.user == "srl":
                info.uid = info.gid = 1000
            tar.addfile(info, io.BytesIO(payload))
        self.run(["mkdir", "-p", str(p.parent)], user="root")
        if not self.container.put_archive(str(p.parent), buf.getvalue()):
            raise SandboxError(f"could not write {path} in the sandbox")

    def read_file(self, path: str) -> bytes:
        try:
            stream, _ = self.container.get_archive(path)
        except NotFound:
            raise FileNotFoundError(f"{path} does not exist in the sandbox") from None
        raw = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = tar.next()
            if member is None or not member.isfile():
                raise IsADirectoryError(f"{path} is not a regular file in the sandbox")
            return tar.extractfile(member).read()

    def copy_in(self, host_path: str | Path, dest_dir: str) -> None:
        """Copy a host file or directory into `dest_dir` in the sandbox."""
        host_path = Path(host_path)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:

            def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
                if self.user == "srl":
                    info.uid = info.gid = 1000
                    info.uname = info.gname = "srl"
                return info

            tar.add(str(host_path), arcname=host_path.name, filter=owned)
        self.run(["mkdir", "-p", dest_dir], user="root")
        if not self.container.put_archive(dest_dir, buf.getvalue()):
            raise SandboxError(f"could not copy {host_path} into {dest_dir}")

    def copy_out(self, path: str, host_dir: str | Path) -> Path:
        """Copy a file or directory from the sandbox into `host_dir`; returns the host path."""
        host_dir = Path(host_dir)
        host_dir.mkdir(parents=True, exist_ok=True)
        try:
            stream, _ = self.container.get_archive(path)
        except NotFound:
            raise FileNotFoundError(f"{path} does not exist in the sandbox") from None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            tar.extractall(host_dir, filter="data")
        return host_dir / Path(path).name

    def diff(self, repo: str = "/testbed") -> str:
        """`git diff` of everything changed in `repo` against HEAD (new files included), without touching
        its index. The temporary index starts from HEAD's tree with no stat data, so every file is hashed:
        a copy of the real index would trust its cached stat data, and an edit that keeps a file's size
        within the index's second ("racy git") would be missed."""
        cmd = (
            f'cd {repo} && idx=$(mktemp) && rm -f "$idx" && '
            '{ GIT_INDEX_FILE="$idx" git read-tree HEAD 2>/dev/null || true; } && '
            'GIT_INDEX_FILE="$idx" git add -A >/dev/null 2>&1 && '
            'GIT_INDEX_FILE="$idx" git diff --cached --binary; rc=$?; rm -f "$idx"; exit $rc'
        )
        res = self.run(cmd)
        if res.exit_code != 0:
            raise SandboxError(f"git diff failed in {repo}: {res.output[-500:]}")
        return res.output

    def commit(self, repository: str, tag: str = "latest") -> str:
        """Snapshot the container as an image (labelled) and return its id."""
        img = self.container.commit(repository=repository, tag=tag, conf={"Labels": labels(kind="snapshot")})
        return img.id


def _owner_alive(c: dict) -> bool:
    """Whether the process that started container `c` still runs on this host (same host name)."""
    lab = c.get("Labels") or {}
    pid, host = lab.get(f"{LABEL}.pid"), lab.get(f"{LABEL}.host")
    if not pid or not pid.isdigit() or host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def gc(client: docker.DockerClient | None = None, *, all: bool = False) -> int:
    """Remove leftover containers labelled srl-swe: those whose owner process is gone (or every one
    with `all=True`); returns how many."""
    client = client or get_client()
    n = 0
    for c in client.api.containers(all=True, filters={"label": LABEL}):
        if not all and c.get("State") == "running" and _owner_alive(c):
            continue
        try:
            client.api.remove_container(c["Id"], force=True)
            n += 1
        except (NotFound, APIError):
            pass
    return n
