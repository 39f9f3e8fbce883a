"""Docker daemon bootstrap and the project's labels.

`get_client()` returns a docker SDK client to a daemon that answers. Where none answers and we can
start one (running as root, `dockerd` installed), it starts `dockerd` in the background with its data
under the project's state directory and waits for it. Otherwise it raises `DockerUnavailable` with
a message that says what to do, within a few seconds.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import docker
from docker.errors import DockerException

from trajectories.errors import SrlSweError

LABEL = "srl-swe"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"


class DockerUnavailable(SrlSweError, RuntimeError):
    """No Docker daemon could be reached or started."""


def labels(**extra: str) -> dict[str, str]:
    """Labels every container, image and volume of the project carries."""
    out = {LABEL: "1"}
    out.update({f"{LABEL}.{k}": str(v) for k, v in extra.items()})
    return out


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(container_labels: dict[str, str] | None) -> bool:
    """Whether the process that started a container still runs: its `srl-swe.pid` label names a live
    process and its `srl-swe.host` label is this host (a container without them has no live owner)."""
    lab = container_labels or {}
    pid, host = lab.get(f"{LABEL}.pid", ""), lab.get(f"{LABEL}.host")
    return pid.isdigit() and host == socket.gethostname() and pid_alive(int(pid))


def state_dir() -> Path:
    """Where the project keeps machine-local state (daemon data, caches)."""
    base = os.environ.get("SRL_SWE_HOME")
    if base:
        return Path(base)
    if os.geteuid() == 0:
        return Path("/var/lib/srl-swe")
    return Path.home() / ".local" / "share" / "srl-swe"


def cache_dir() -> Path:
    base = os.environ.get("SRL_SWE_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "srl-swe"


API_TIMEOUT = 600  # seconds for ordinary API calls (image removal and commits can be slow)


def _ping(timeout: float) -> docker.DockerClient | None:
    """A client with the ordinary API timeout, when the daemon answers a ping within `timeout`."""
    try:
        probe = docker.from_env(timeout=timeout)
        probe.ping()
        probe.close()
        return docker.from_env(timeout=API_TIMEOUT)
    except (DockerException, OSError):
        return None


def can_start_daemon() -> tuple[bool, str]:
    """Whether `start_daemon` can work here, and if not, why."""
    if os.environ.get("DOCKER_HOST") and os.environ["DOCKER_HOST"] != DEFAULT_SOCKET:
        return False, f"DOCKER_HOST={os.environ['DOCKER_HOST']} is set; start that daemon yourself"
    if os.geteuid() != 0:
        return False, "not running as root: start Docker yourself (e.g. `sudo systemctl start docker`)"
    if shutil.which("dockerd") is None:
        return False, "dockerd is not installed: `apt-get install -y docker.io` (or install Docker Engine)"
    return True, ""


def start_daemon(wait: float = 30.0) -> docker.DockerClient:
    """Start `dockerd` in the background (root only) and wait until it answers."""
    ok, why = can_start_daemon()
    if not ok:
        raise DockerUnavailable(f"cannot start a Docker daemon: {why}")
    root = state_dir() / "docker"
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "exec").mkdir(parents=True, exist_ok=True)
    log = open(root / "dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon process
    subprocess.Popen(
        [
            "dockerd",
            "--host",
            DEFAULT_SOCKET,
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "--pidfile",
            str(root / "dockerd.pid"),
        ],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        client = _ping(timeout=2)
        if client is not None:
            return client
        time.sleep(0.2)
    raise DockerUnavailable(
        f"started dockerd but it did not answer within {wait:.0f} s; see {root / 'dockerd.log'}"
    )


def get_client(start: bool = True) -> docker.DockerClient:
    """A client to a running daemon; starts one where possible (see module doc)."""
    client = _ping(timeout=3)
    if client is not None:
        return client
    if start and can_start_daemon()[0]:
        return start_daemon()
    _, why = can_start_daemon()
    raise DockerUnavailable(
        "the Docker daemon is not reachable"
        + (f" at DOCKER_HOST={os.environ['DOCKER_HOST']}" if os.environ.get("DOCKER_HOST") else "")
        + f". {why}. Then run `srl doctor` to check."
    )
