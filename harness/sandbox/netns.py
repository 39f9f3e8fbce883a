"""The offline network-namespace pool: idle loopback-only namespaces that sandboxes without network join.

Creating a network namespace (and tearing it down) costs the kernel and the daemon ~70 ms of wall and
CPU time per container, as much as the rest of a container start; see `NetnsPool`.
"""

from __future__ import annotations

import os
import socket
import threading

import docker
from docker.errors import APIError, NotFound

from harness.docker_env import labels


class Holder:
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


class NetnsPool:
    """Idle offline network namespaces of this process, each lent to one sandbox at a time.

    Creating a network namespace (and tearing it down) costs the kernel and the daemon ~70 ms of wall
    and CPU time per container, as much as the rest of a container start. A sandbox without network
    instead joins an idle holder's namespace (`network_mode="container:<holder>"`): loopback only, like
    `"none"`; never two running sandboxes in one namespace, so concurrent test runs cannot reach each
    other or collide on a port. A namespace goes back to the pool only when its sandbox's processes are
    gone. Only sandboxes whose processes run as a non-root user join one: the namespace's /etc/hosts
    is the holder's, which a non-root user cannot change."""

    def __init__(self) -> None:
        self._idle: list[Holder] = []
        self._all: dict[str, Holder] = {}
        self._lock = threading.Lock()
        self._broken: set[str] = set()  # images a holder could not start from
        self._making = 0  # holders being made
        self._asked = 0  # leases that found no idle holder
        self._generation = 0  # bumped by close(): a holder made across a close is not kept

    def lease(self, client: docker.DockerClient, image: str) -> Holder | None:
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
                holder = Holder(client, candidate)
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

    def release(self, holder: Holder) -> None:
        with self._lock:
            if holder.id in self._all:
                self._idle.append(holder)

    def discard(self, holder: Holder) -> None:
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


POOL = NetnsPool()

# a forked child starts with no namespaces of its own: at its exit it must not remove the parent's, and
# it must not lend the parent's namespaces to a second sandbox at once
os.register_at_fork(after_in_child=POOL.forget)


def prewarm_netns(client: docker.DockerClient, n: int, image: str | None = None) -> None:
    """Have `n` offline network namespaces ready for the sandboxes about to start (in the background;
    made from the project's base image, else from `image`)."""
    POOL.prewarm(client, image, n)


def close_netns_pool() -> None:
    """Remove this process's idle offline network namespaces (done at exit anyway)."""
    POOL.close()
