"""The container: a labelled Docker container with hard limits (lifecycle) and the ways to run
commands in it (execution).

    with Sandbox(SandboxConfig(image="srl-base:bookworm", memory="512m", timeout=30)) as sb:
        sb.exec("cd /tmp; export X=1")
        r = sb.exec("echo $X; pwd")      # -> ExecResult(exit_code=0, output="1\n/tmp\n", ...)

Lifecycle: which container, its limits, labels and guaranteed removal (on exit, on an exception, on
Ctrl-C, and at interpreter exit for anything still open). Execution: `exec` (the persistent session,
`protocol.ShellSession`), `run` (a fresh `docker exec`) and `run_once` (the command as the container's
main process); all three report limits through `results.command_result`.
"""

from __future__ import annotations

import atexit
import os
import select
import socket
import threading
import time

import docker
from docker.errors import APIError, ImageNotFound, NotFound

from harness.docker_env import LABEL, get_client, labels, owner_alive
from harness.sandbox.config import SandboxConfig
from harness.sandbox.files import SandboxFiles
from harness.sandbox.netns import POOL, Holder
from harness.sandbox.protocol import SessionEnded, ShellSession, demux, new_token, script, split_status
from harness.sandbox.results import ExecResult, OutputBuffer, SandboxError, command_result

_LIVE: dict[str, Sandbox] = {}
_LIVE_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    # a forked child starts with no sandboxes of its own: at its exit it must not remove the parent's
    global _LIVE_LOCK
    _LIVE.clear()
    _LIVE_LOCK = threading.Lock()  # another thread of the parent may have held it


os.register_at_fork(after_in_child=_after_fork_in_child)


def _close_all() -> None:
    for sb in list(_LIVE.values()):
        sb.close()
    POOL.close()


atexit.register(_close_all)


class Sandbox(SandboxFiles):
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
        self._netns: Holder | None = None  # the offline network namespace it joined, if any

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
            self._open_session()
        except BaseException:
            self.close()
            raise
        return self

    def _open_session(self) -> None:
        cfg = self.config
        self.session = ShellSession(
            self.client, self.container.id, self.user, cfg.workdir, cfg.env, cfg.output_limit
        )
        self.session.start()

    def run_once(self, command: str, timeout: float | None = None) -> ExecResult:
        """Start the sandbox with `command` as the container's main process and wait for it: one
        command, no persistent session (no `docker exec`, the least work for the daemon; what `srl
        evaluate` uses). Output, limits and the result are those of `exec`; on timeout the container is
        killed. The stopped container stays until `close()`, so `read_file` and `copy_out` still work.
        """
        if self.container is not None:
            raise SandboxError("run_once starts the sandbox; this one is already started")
        timeout = timeout or self.config.timeout
        token = new_token("END")
        self._create(
            ["bash", "--noprofile", "--norc", "-c", script("once.sh"), "bash", command, token], user=None
        )
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
        output, status, cut = split_status(raw, token)
        oom_killed = False
        if status is None:  # the main shell itself was killed (no status line with the cgroup's counters)
            try:
                oom_killed = bool(api.inspect_container(self.container.id)["State"].get("OOMKilled"))
            except (NotFound, APIError):
                pass
        return command_result(
            exit_code=status.exit_code if status else rc,
            output=output,
            truncated=truncated,
            output_bytes=buf.total - cut,
            duration=duration,
            timed_out=timed_out,
            oom=oom_killed or (status is not None and status.oom > 0),
            pids=status is not None and status.pids > 0,
        )

    def _drain(self, sock: socket.socket, deadline: float, token: str) -> tuple[OutputBuffer, bool]:
        """Read the main process's output until it ends (EOF) or the deadline (then kill it)."""
        buf = OutputBuffer(self.config.output_limit + 200)  # room for the status trailer
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
            buf.add(demux(pending))
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
        self._netns = POOL.lease(self.client, cfg.image)
        return f"container:{self._netns.id}" if self._netns is not None else "none"

    def _release_netns(self) -> None:
        holder, self._netns = self._netns, None
        if holder is not None:
            POOL.release(holder)

    def _start_container(self) -> None:
        try:
            self.container.start()
        except APIError as exc:
            if self._netns is not None:  # its holder died between create and start: not lent again
                POOL.discard(self._netns)
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
        except SandboxError as exc:
            # the shell ended or hung: end whatever it left running, start a fresh session, say so
            before = self.session.counters
            self._restart_session()
            return self._after_restart(exc, before, timeout)
        if res.limit == "pids" and self.session.pids_full:
            # what the command left running still takes every pid: the same clean-up, after the result
            self._restart_session()
            note = "[the command hit the pids limit; the shell session was restarted]\n"
            res = res.model_copy(update={"output": res.output + note, "restarted": True})
        return res

    def _after_restart(self, exc: SandboxError, before: tuple[int, int], timeout: float) -> ExecResult:
        """The result of a command whose session had to be restarted: the shell ended during it (an
        `exit` in the command, or the shell was killed: its output so far and the shell's exit status),
        or it hung after a timeout."""
        after = self.session.counters
        oom, pids = after[0] > before[0], after[1] > before[1]
        if isinstance(exc, SessionEnded):
            raw, truncated = exc.output.result()
            code = -1 if exc.exit_code is None else exc.exit_code
            note = f"[the shell session ended (exit status {code}); a fresh session was started]\n"
            return command_result(
                exit_code=code,
                output=raw + note.encode(),
                truncated=truncated,
                output_bytes=exc.output.total,
                duration=exc.duration,
                timed_out=exc.timed_out,
                oom=oom,
                pids=pids,
                restarted=True,
            )
        limit = "oom" if oom else "pids" if pids else "timeout"
        note = f"[the command hit the {limit} limit; the shell session was restarted]\n"
        return command_result(
            exit_code=-1,
            output=note.encode(),
            truncated=False,
            output_bytes=0,
            duration=timeout,
            timed_out=True,
            oom=oom,
            pids=pids,
            restarted=True,
        )

    def _restart_session(self) -> None:
        """End the session and every process of its user, then open a fresh session."""
        self.session.close()
        self._kill_all()
        self._open_session()

    def _kill_all(self) -> None:
        """Signal every process of the session's user (not init): what a hung session leaves behind
        (`kill_all.sh`). Under a fork bomb the pids cgroup may refuse the exec itself, so that is
        retried a few times."""
        for _ in range(20):
            try:
                res = self.container.exec_run(["sh", "-c", script("kill_all.sh")], user=self.user or "root")
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
        argv = ["sh", "-c", script("kill_tree.sh"), "sh", str(pid)]
        self.client.api.exec_start(self.client.api.exec_create(self.id, argv, user=self.user or "root")["Id"])

    def run(
        self,
        command: str | list[str],
        timeout: float | None = None,
        user: str | None = None,
        workdir: str | None = None,
    ) -> ExecResult:
        """Run one command with a fresh `docker exec` (outside the session; no state is shared). It is
        killed after `timeout` seconds; `run.sh` reports its status and the cgroup counters around it."""
        if self.container is None:
            raise SandboxError("the sandbox is not running")
        argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
        t = timeout or self.config.timeout
        token = new_token("RUN")
        wrapper = [
            "bash",
            "--noprofile",
            "--norc",
            "-c",
            script("run.sh"),
            "bash",
            f"{max(t, 0.01):.3f}",
            token,
        ]
        start = time.monotonic()
        res = self.container.exec_run(
            [*wrapper, *argv],
            user=user or self.user or "",
            workdir=workdir or self.config.workdir,
            demux=False,
        )
        duration = time.monotonic() - start
        raw, status, _ = split_status(res.output or b"", token)
        buf = OutputBuffer(self.config.output_limit)
        buf.add(raw)
        data, truncated = buf.result()
        rc = status.exit_code if status is not None else res.exit_code
        before = status.before if status is not None and status.before else None
        oom = before is not None and status.oom > before[0]
        pids = before is not None and status.pids > before[1]
        return command_result(
            exit_code=rc,
            output=data,
            truncated=truncated,
            output_bytes=len(raw),
            duration=duration,
            timed_out=rc == 137 and not oom and duration >= t,  # `timeout -s KILL` ended it
            oom=oom,
            pids=pids,
        )


def gc(client: docker.DockerClient | None = None, *, all: bool = False) -> int:
    """Remove leftover containers labelled srl-swe: those whose owner process is gone (or every one
    with `all=True`); returns how many."""
    client = client or get_client()
    n = 0
    for c in client.api.containers(all=True, filters={"label": LABEL}):
        if not all and c.get("State") == "running" and owner_alive(c.get("Labels")):
            continue
        try:
            client.api.remove_container(c["Id"], force=True)
            n += 1
        except (NotFound, APIError):
            pass
    return n
