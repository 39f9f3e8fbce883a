"""The sandbox against a real Docker daemon: limits, the persistent session, files, cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import docker
import pytest

from harness.sandbox import Sandbox, SandboxConfig, SandboxError

pytestmark = pytest.mark.docker


@pytest.fixture()
def sb(docker_client, base_image):
    with Sandbox(
        SandboxConfig(image=base_image, memory="256m", pids_limit=64, timeout=30), client=docker_client
    ) as s:
        yield s


def _labelled(client, **flt):
    labels = ["srl-swe"] + [f"srl-swe.{k}={v}" for k, v in flt.items()]
    return client.api.containers(all=True, filters={"label": labels})


def test_session_state_persists(sb):
    assert sb.exec("cd /tmp; export X=1; f() { echo fn$1; }").exit_code == 0
    r = sb.exec("echo $X; pwd; f 2")
    assert r.output == "1\n/tmp\nfn2\n"
    assert r.exit_code == 0 and not r.timed_out and r.limit is None


def test_exit_code_and_interleaved_stderr(sb):
    r = sb.exec("echo out; echo err >&2; echo out2; exit_code() { return 3; }; exit_code")
    assert r.exit_code == 3
    assert r.output == "out\nerr\nout2\n"


def test_syntax_error_does_not_hang_the_session(sb):
    r = sb.exec("echo 'unbalanced")
    assert r.exit_code != 0 and not r.timed_out
    assert sb.exec("echo ok").output == "ok\n"


def test_command_cannot_read_the_session_stdin(sb):
    r = sb.exec("cat; echo after", timeout=5)
    assert r.output == "after\n" and not r.timed_out


def test_timeout_kills_process_group_and_session_survives(sb):
    sb.exec("cd /tmp; export KEEP=yes")
    t0 = time.monotonic()
    r = sb.exec("sleep 100 & sleep 100; echo never", timeout=2)
    assert time.monotonic() - t0 < 5
    assert r.timed_out and r.limit == "timeout"
    assert "never" not in r.output
    after = sb.exec("echo $KEEP; pwd; pgrep -c sleep || true")
    assert after.output.splitlines()[:2] == ["yes", "/tmp"]
    assert not after.restarted


def test_exit_ends_the_session_and_a_fresh_one_follows(sb):
    sb.exec("cd /tmp; export KEEP=yes")
    r = sb.exec("echo before; sleep 100 & exit 3")
    assert r.exit_code == 3 and not r.timed_out and r.limit is None and r.restarted
    assert r.output.startswith("before\n") and "session ended (exit status 3)" in r.output
    after = sb.exec("echo ${KEEP:-gone}; pgrep -u srl -c sleep || true")
    assert after.output == "gone\n0\n" and not after.restarted  # nothing it started is left


def test_fork_bomb_is_contained_and_sandbox_answers(sb):
    r = sb.exec("bomb() { bomb | bomb & }; bomb; sleep 3", timeout=20)
    # the pids cgroup stopped it; the shell still answers with builtins
    assert r.limit == "pids" or "Resource temporarily unavailable" in r.output
    assert r.restarted  # what it left running kept every pid taken: ended, with the session
    assert sb.exec("echo alive", timeout=10).output.startswith("alive")


def test_oom_is_reported(sb):
    r = sb.exec("python3 -c 'x = bytearray(2 * 1024**3)'", timeout=60)
    assert r.exit_code == 137
    assert r.limit == "oom"
    assert sb.exec("echo fine").output == "fine\n"


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_huge_output_is_capped_and_host_memory_stays_flat(sb):
    peak = [_rss_mb()]
    base = peak[0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.01)

    t = threading.Thread(target=sample)
    t.start()
    try:
        r = sb.exec("head -c 200000000 /dev/zero | tr '\\0' a", timeout=120)
    finally:
        done.set()
        t.join()
    assert r.truncated and r.limit == "output"
    assert r.output_bytes == 200_000_000
    assert len(r.output) < 1_100_000
    assert r.output.startswith("aaaa") and r.output.endswith("aaaa")
    assert peak[0] - base < 100, f"host RSS grew by {peak[0] - base:.0f} MB"


def test_binary_output_decodes_with_replacement(sb):
    r = sb.exec("printf '\\xff\\xfeok\\n'")
    assert r.output == "\ufffd\ufffdok\n"


def test_no_network(sb):
    r = sb.exec("python3 -c 'import socket; socket.create_connection((\"1.1.1.1\", 53), timeout=3)'")
    assert r.exit_code != 0
    assert "unreachable" in r.output.lower() or "timed out" in r.output.lower()
    assert sb.exec("cat /sys/class/net/*/operstate | sort | tr '\\n' ' '").output.strip() in {"unknown", ""}


def test_runs_unprivileged(sb):
    assert sb.exec("id -u").output.strip() == "1000"
    assert "CapEff:\t0000000000000000" in sb.exec("grep CapEff /proc/self/status").output


def test_files_copy_and_diff(sb, tmp_path):
    sb.exec(
        "mkdir -p /tmp/repo && cd /tmp/repo && git init -q && echo a > a.txt && git add . && git commit -qm init"
    )
    sb.write_file("/tmp/repo/a.txt", "b\n")
    sb.write_file("/tmp/repo/new.txt", b"\x00bin")
    assert sb.read_file("/tmp/repo/a.txt") == b"b\n"
    diff = sb.diff("/tmp/repo")
    assert "-a\n+b" in diff and "new.txt" in diff
    assert sb.exec("cd /tmp/repo && git status --porcelain").output.count("??") == 1  # index untouched
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.py").write_text("print(1)\n")
    sb.copy_in(tmp_path / "d", "/tmp/in")
    assert sb.exec("python3 /tmp/in/d/x.py").output == "1\n"
    out = sb.copy_out("/tmp/repo/a.txt", tmp_path / "out")
    assert out.read_text() == "b\n"
    with pytest.raises(FileNotFoundError):
        sb.read_file("/nope")


def test_commit_snapshot_is_reusable(sb, docker_client):
    sb.exec("echo snap > /tmp/marker")
    image_id = sb.commit("srl-test-snapshot", "t1")
    try:
        with Sandbox(SandboxConfig(image="srl-test-snapshot:t1"), client=docker_client) as sb2:
            assert sb2.exec("cat /tmp/marker").output == "snap\n"
    finally:
        docker_client.images.remove(image_id, force=True)


def test_gc_removes_orphans_but_spares_sandboxes_in_use(sb, docker_client, base_image):
    from harness.docker_env import labels
    from harness.sandbox import gc

    # an orphan: labelled like a sandbox whose owner process has ended
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    orphan = docker_client.containers.run(
        base_image,
        ["sleep", "300"],
        detach=True,
        network_mode="none",
        init=True,
        labels=labels(pid=dead.stdout.strip(), host=os.uname().nodename, test="gc"),
    )
    try:
        assert gc(docker_client) >= 1
        ids = {c["Id"] for c in _labelled(docker_client)}
        assert orphan.id not in ids
        assert sb.id in ids and sb.exec("echo still").output == "still\n"
    finally:
        try:
            docker_client.api.remove_container(orphan.id, force=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture()
def once(docker_client, base_image):
    s = Sandbox(
        SandboxConfig(image=base_image, memory="256m", pids_limit=64, timeout=30), client=docker_client
    )
    yield s
    s.close()


def test_run_once_output_exit_code_user_and_files(once, docker_client, base_image):
    _warm_pool(docker_client, base_image, 1)
    r = once.run_once("cd /tmp && echo out; echo err >&2; id -u; echo kept > f; exit 3")
    assert r.output == "out\nerr\n1000\n" and r.exit_code == 3
    assert not r.timed_out and r.limit is None and r.output_bytes == len(r.output)
    # no `docker exec` was needed: the command was the container's main process, now exited
    assert once.session is None
    once.container.reload()
    assert once.container.status == "exited"
    assert once.read_file("/tmp/f") == b"kept\n"  # the stopped container's files are still readable
    assert once.container.attrs["HostConfig"]["PidsLimit"] == 64
    # no network: it joined an idle offline namespace of this process (its holder has network "none")
    mode = once.container.attrs["HostConfig"]["NetworkMode"]
    holder = docker_client.api.inspect_container(mode.removeprefix("container:"))
    assert (
        holder["HostConfig"]["NetworkMode"] == "none"
        and holder["Config"]["Labels"]["srl-swe.kind"] == "netns"
    )
    assert once.container.labels["srl-swe"] == "1"
    with pytest.raises(SandboxError, match="already started"):
        once.run_once("true")
    cid = once.id
    once.close()
    assert not docker_client.api.containers(all=True, filters={"id": cid})


def test_run_once_status_line_cannot_be_forged(once):
    # the command cannot know the random token of the real status line: a printed fake is plain output
    r = once.run_once("printf '\\n__SRL_END_0000000000000000 0 0 0\\n'; exit 4")
    assert r.exit_code == 4 and "__SRL_END_0000000000000000" in r.output


def test_run_once_timeout_kills_the_container_and_keeps_the_output(once):
    t0 = time.monotonic()
    r = once.run_once("echo before; touch /tmp/started; sleep 100; echo never", timeout=2)
    assert time.monotonic() - t0 < 10
    assert r.timed_out and r.limit == "timeout" and r.exit_code == -1
    assert r.output == "before\n"
    assert once.read_file("/tmp/started") == b""


def test_run_once_caps_output_and_reports_oom(docker_client, base_image):
    cfg = SandboxConfig(image=base_image, memory="256m", output_limit=10_000, timeout=60)
    capped = Sandbox(cfg, client=docker_client)
    try:
        r = capped.run_once("head -c 3000000 /dev/zero | tr '\\0' a")
        assert r.truncated and r.limit == "output" and r.output_bytes == 3_000_000 and len(r.output) < 11_000
        assert r.output.startswith("aaaa") and r.output.endswith("aaaa")
    finally:
        capped.close()
    hog = Sandbox(cfg, client=docker_client)
    try:
        r = hog.run_once("python3 -c 'x = bytearray(2 * 1024**3)'")
        assert r.exit_code == 137 and r.limit == "oom"
    finally:
        hog.close()


# the same command through the session, a fresh `docker exec` and the container's main process:
# (command, timeout) -> (exit_code, timed_out, limit, truncated, output_bytes, output or None)
_AGREE = {
    "ok": (("echo hi", 30), (0, False, None, False, 3, "hi\n")),
    "exit": (("echo out; echo err >&2; (exit 3)", 30), (3, False, None, False, 8, "out\nerr\n")),
    # `exit` ends the session's shell: its status is reported, and a note says a fresh session started
    "shell exit": (("echo out; exit 3", 30), (3, False, None, False, 4, None)),
    # the session's shell also reports the job it killed ("... Killed  sleep 60"): output checked below
    "timeout": (("echo before; sleep 60", 2), (-1, True, "timeout", False, None, None)),
    "oom": (("python3 -c 'x = bytearray(2 * 1024**3)'", 60), (137, False, "oom", False, None, None)),
    "output": (("head -c 50000 /dev/zero | tr '\\0' a", 30), (0, False, "output", True, 50_000, None)),
}


@pytest.mark.parametrize("case", list(_AGREE))
def test_exec_run_and_run_once_report_limits_alike(docker_client, base_image, case):
    (command, timeout), expected = _AGREE[case]
    cfg = SandboxConfig(image=base_image, memory="256m", pids_limit=64, output_limit=10_000, timeout=timeout)
    with Sandbox(cfg, client=docker_client) as sb:
        results = {"exec": sb.exec(command), "run": sb.run(command)}
        assert sb.exec("echo alive").output == "alive\n"  # the session outlived the limit
    once = Sandbox(cfg, client=docker_client)
    try:
        results["run_once"] = once.run_once(command)
    finally:
        once.close()
    for how, r in results.items():
        got = (r.exit_code, r.timed_out, r.limit, r.truncated, r.output_bytes, r.output)
        want = tuple(g if e is None else e for g, e in zip(got, expected, strict=True))
        assert got == want, how
        assert r.duration < timeout + 10, how
        if case == "shell exit":
            assert r.output.startswith("out\n") and r.restarted == (how == "exec"), how
        if case == "timeout":
            assert r.output.startswith("before\n") and "never" not in r.output, how
        if case == "output":
            assert r.output.startswith("aaaa") and r.output.endswith("aaaa") and len(r.output) < 11_000, how


def test_a_sandbox_closed_before_or_while_starting_leaves_no_container(
    docker_client, base_image, sandboxes_left
):
    # Ctrl-C closes every sandbox from the main thread, while a worker may be creating one
    cfg = SandboxConfig(image=base_image, timeout=30)
    early = Sandbox(cfg, client=docker_client)
    early.close()
    with pytest.raises(SandboxError, match="closed"):
        early.run_once("true")
    racing = Sandbox(cfg, client=docker_client)
    real_create = docker_client.containers.create

    def create_then_get_closed(**kwargs):
        container = real_create(**kwargs)
        racing.close()  # the close arrives while the create call is in flight
        return container

    class Containers:  # the client's collection, with the racing create
        def __getattr__(self, name):
            return create_then_get_closed if name == "create" else getattr(docker_client.containers, name)

    racing.client = type("C", (), {"containers": Containers(), "images": docker_client.images,
                                   "api": docker_client.api})()  # fmt: skip
    with pytest.raises(SandboxError, match="closed while it was starting"):
        racing.run_once("sleep 30")
    assert not sandboxes_left(docker_client, f"srl-swe.pid={os.getpid()}")


def test_unknown_image_says_how_to_build(docker_client):
    with pytest.raises(SandboxError, match="not on this machine"):
        Sandbox(SandboxConfig(image="srl-does-not-exist:1"), client=docker_client).start()


def test_exception_inside_with_removes_container(docker_client, base_image):
    with pytest.raises(RuntimeError):
        with Sandbox(SandboxConfig(image=base_image), client=docker_client) as s:
            cid = s.id
            raise RuntimeError("boom")
    assert not [c for c in _labelled(docker_client) if c["Id"] == cid]


def _sandbox_exec_argv(image: str, *command: str) -> list[str]:
    return [sys.executable, "-m", "srl_agent.cli", "sandbox", "exec", "--image", image, "--", *command]


def test_ctrl_c_on_sandbox_exec_leaves_no_container(docker_client, base_image):
    proc = subprocess.Popen(
        _sandbox_exec_argv(base_image, "sleep", "60"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _labelled(docker_client, pid=proc.pid):
            time.sleep(0.1)
        assert _labelled(docker_client, pid=proc.pid), "the sandbox never started"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
    finally:
        proc.kill()
    assert rc == 130
    assert not _labelled(docker_client, pid=proc.pid)


def test_sandbox_exec_cli_exit_code(base_image):
    out = subprocess.run(
        _sandbox_exec_argv(base_image, "sh", "-c", "echo hi; exit 7"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 7
    assert out.stdout == "hi\n"


def test_daemon_unreachable_is_reported_quickly(tmp_path):
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/nope.sock")
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "srl_agent.cli", "sandbox", "exec", "--", "true"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert time.monotonic() - t0 < 5 + 3  # + interpreter start
    assert out.returncode != 0
    assert "not reachable" in out.stderr and "srl doctor" in out.stderr


# ------------------------------------------------------------------ offline network namespaces (pool)


def _netns(sb: Sandbox) -> str:
    return sb.exec("readlink /proc/self/ns/net").output.strip()


def _warm_pool(client, image: str, n: int) -> None:
    """Until this process has `n` idle offline namespaces (a sandbox that finds none idle has one made
    in the background for the next)."""
    from harness.sandbox.netns import POOL

    deadline = time.monotonic() + 60
    while len(POOL._idle) < n:
        assert time.monotonic() < deadline, "no idle namespace was made"
        with (
            Sandbox(SandboxConfig(image=image, timeout=30), client=client),
            Sandbox(SandboxConfig(image=image, timeout=30), client=client),
        ):
            time.sleep(0.3)


def test_offline_namespace_is_reused_but_never_shared_at_once(docker_client, base_image):
    cfg = SandboxConfig(image=base_image, timeout=30)
    _warm_pool(docker_client, base_image, 2)
    with Sandbox(cfg, client=docker_client) as a, Sandbox(cfg, client=docker_client) as b:
        first, second = _netns(a), _netns(b)
        for sb in (a, b):
            assert sb.container.attrs["HostConfig"]["NetworkMode"].startswith("container:")
        assert first != second  # two running sandboxes: two namespaces (no shared loopback, no port clash)
        for sb in (a, b):
            # no network: loopback only, nothing outside is reachable
            assert sb.exec("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '").output.split() == ["lo"]
            probe = "python3 -c 'import socket; socket.create_connection((\"1.1.1.1\", 80), timeout=3)'"
            assert sb.exec(probe).exit_code != 0
        # both listen on the same port at once
        listen = "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 8765)); s.listen()' && echo ok"
        assert a.exec(listen).output == "ok\n" and b.exec(listen).output == "ok\n"
    # a namespace whose sandbox is gone is lent again
    with Sandbox(cfg, client=docker_client) as c:
        assert _netns(c) in {first, second}
    # a sandbox whose commands run as root gets a namespace of its own ("none")
    with Sandbox(cfg.model_copy(update={"user": "root"}), client=docker_client) as r:
        assert r.container.attrs["HostConfig"]["NetworkMode"] == "none"
        assert _netns(r) not in {first, second}
    # so does one that asks for it
    with Sandbox(cfg.model_copy(update={"reuse_netns": False}), client=docker_client) as own:
        assert own.container.attrs["HostConfig"]["NetworkMode"] == "none"


def test_a_removed_namespace_holder_is_replaced(docker_client, base_image):
    cfg = SandboxConfig(image=base_image, timeout=30)
    _warm_pool(docker_client, base_image, 1)
    with Sandbox(cfg, client=docker_client) as a:
        holder = a.container.attrs["HostConfig"]["NetworkMode"].removeprefix("container:")
    docker_client.api.remove_container(holder, force=True)  # e.g. `srl sandbox gc --all` meanwhile
    with Sandbox(cfg, client=docker_client) as b:
        assert b.exec("echo fine").output == "fine\n"
        assert holder not in b.container.attrs["HostConfig"]["NetworkMode"]


_POOL_USER = """
import sys, time
from harness.sandbox import Sandbox, SandboxConfig
from harness.sandbox.netns import POOL
for _ in range(2):  # the second sandbox of a process has a namespace made for the next one
    with Sandbox(SandboxConfig(image=sys.argv[1], timeout=30)) as sb:
        sb.exec("true")
while not POOL._idle:  # the namespace made meanwhile for the next sandbox
    time.sleep(0.05)
print("idle", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_namespace_holders_go_with_their_process(docker_client, base_image, how):
    """At exit they are removed; after a SIGKILL (no exit handler runs) the daemon closes the holder's
    stdin, which ends it, and it removes itself."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _POOL_USER, base_image, "0" if how == "exit" else "300"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline() == "idle\n"
        holders = _labelled(docker_client, pid=proc.pid, kind="netns")
        if how == "sigkill":
            assert len(holders) == 1  # the idle namespace, kept for the next sandbox
            proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _labelled(docker_client, pid=proc.pid):
            time.sleep(0.2)
        assert not _labelled(docker_client, pid=proc.pid)
    finally:
        proc.kill()


_FORKING = """
import os, sys, time
from harness.sandbox import Sandbox, SandboxConfig
from harness.sandbox.container import _LIVE
from harness.sandbox.netns import POOL
for _ in range(2):
    with Sandbox(SandboxConfig(image=sys.argv[1], timeout=30)) as sb:
        sb.exec("true")
while not POOL._idle:
    time.sleep(0.05)
holder = POOL._idle[0]
kept = Sandbox(SandboxConfig(image=sys.argv[1], timeout=30)).start()
pid = os.fork()
if pid == 0:  # the child owns nothing of the parent's, and its exit handlers remove nothing
    sys.exit(0 if not POOL._idle and not _LIVE else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert kept.exec("echo alive").output == "alive\\n"
kept.close()
assert holder.running()
print("ok", flush=True)
"""


def test_a_forked_child_leaves_the_parents_sandboxes_and_namespaces_alone(base_image):
    out = subprocess.run(
        [sys.executable, "-c", _FORKING, base_image], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr[-2000:]
