"""Sandbox pieces that need no Docker: quoting, the bounded output buffer, the config factory and the
shell programs (package data, run here with the host's bash)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.spec import TESTBED, Limits, TaskSpec
from harness.docker_env import labels, owner_alive, pid_alive
from harness.sandbox import SandboxConfig
from harness.sandbox.protocol import SCRIPTS, bash_quote, script, split_status
from harness.sandbox.results import OutputBuffer


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=80)
)
def test_bash_quote_round_trips_through_real_bash(text):
    out = subprocess.run(["bash", "-c", f"printf %s {bash_quote(text)}"], capture_output=True)
    assert out.stdout.decode("utf-8", errors="surrogateescape") == text


def test_output_buffer_keeps_head_and_tail_and_counts_everything():
    buf = OutputBuffer(limit=10)
    for chunk in (b"0123456789", b"abcdefghij", b"KLMNO"):
        buf.add(chunk)
    data, truncated = buf.result()
    assert truncated
    assert buf.total == 25
    assert data.startswith(b"01234")
    assert data.endswith(b"KLMNO")
    assert b"15 bytes of output truncated" in data


def test_output_buffer_small_output_is_untouched():
    buf = OutputBuffer(limit=100)
    buf.add(b"hello ")
    buf.add(b"world")
    assert buf.result() == (b"hello world", False)


def test_config_rejects_unknown_fields():
    with pytest.raises(ValueError, match="memroy"):
        SandboxConfig(memroy="1g")


def _task(**limits) -> TaskSpec:
    return TaskSpec(
        instance_id="own__repo-7",
        repo="own/repo",
        base_commit="a" * 40,
        FAIL_TO_PASS=["tests/test_mod.py::test_b"],
        limits=Limits(**limits),
    )


def test_config_for_task_takes_the_tasks_limits_repo_and_labels():
    cfg = SandboxConfig.for_task(
        _task(cpus=2.5, memory="3g", pids=99, test_timeout=77), "img:1", kind="replay"
    )
    assert (cfg.image, cfg.cpus, cfg.memory, cfg.pids_limit, cfg.timeout) == ("img:1", 2.5, "3g", 99, 77)
    assert cfg.workdir == TESTBED == "/testbed"
    assert cfg.network is False
    assert cfg.extra_labels == {"instance_id": "own__repo-7", "kind": "replay"}


def test_config_for_task_overrides_fields_and_adds_labels():
    cfg = SandboxConfig.for_task(
        _task(), "img:1", timeout=5, output_limit=2048, extra_labels={"run": "r1", "kind": "x"}
    )
    assert (cfg.timeout, cfg.output_limit) == (5, 2048)
    assert cfg.extra_labels == {"instance_id": "own__repo-7", "run": "r1", "kind": "x"}
    with pytest.raises(ValueError, match="memroy"):
        SandboxConfig.for_task(_task(), "img:1", memroy="1g")


def test_shell_programs_are_package_data_that_bash_parses():
    pkg = resources.files("harness.sandbox")
    names = sorted(p.name for p in pkg.iterdir() if p.name.endswith(".sh"))
    assert names == sorted(SCRIPTS)
    for name in SCRIPTS:
        text = pkg.joinpath(name).read_text(encoding="utf-8")
        assert script(name).endswith(text)
        shell = "sh" if name in ("kill_tree.sh", "kill_all.sh") else "bash"  # run by `sh -c`
        check = subprocess.run([shell, "-n"], input=script(name), capture_output=True, text=True)
        assert check.returncode == 0, (name, check.stderr)
    # the programs that report cgroup counters carry the function that reads them
    assert all("__srl_cg()" in script(n) for n in ("session.sh", "once.sh", "run.sh"))
    with pytest.raises(ValueError, match="no sandbox script 'nope.sh'"):
        script("nope.sh")


def test_once_program_reports_status_and_counters_with_bash(tmp_path):
    # the same program the container's main process runs, here with the host's bash (no cgroup files
    # needed: the counters then read 0)
    token = "__SRL_END_test"
    out = subprocess.run(
        ["bash", "-c", script("once.sh"), "bash", "echo out; echo err >&2; exit 3", token],
        capture_output=True,
        cwd=tmp_path,
    )
    output, status, cut = split_status(out.stdout, token)
    assert output == b"out\nerr\n" and status is not None and status.exit_code == 3
    assert cut == len(out.stdout) - len(output) and out.returncode == 0


def test_run_program_reports_the_exit_status_and_the_counters_before_and_after():
    token = "__SRL_RUN_test"
    out = subprocess.run(
        ["bash", "-c", script("run.sh"), "bash", "5", token, "sh", "-c", "echo hi; exit 7"],
        capture_output=True,
    )
    output, status, _ = split_status(out.stdout, token)
    assert output == b"hi\n" and status.exit_code == 7 and status.before is not None


def test_wheel_ships_the_shell_programs(tmp_path):
    """A wheel (what `pip install` of a release gets) holds the `.sh` files `protocol.script` reads."""
    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    for pkg in ("harness", "envs", "srl_agent", "trajectories"):
        shutil.copytree(root / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    build = "import setuptools.build_meta as b, sys; print(b.build_wheel(sys.argv[1]))"
    out = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path / "dist")], cwd=src, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    with zipfile.ZipFile(tmp_path / "dist" / out.stdout.strip().splitlines()[-1]) as whl:
        shipped = {n.rsplit("/", 1)[1] for n in whl.namelist() if n.startswith("harness/sandbox/")}
    assert set(SCRIPTS) <= shipped


def test_owner_alive_needs_a_live_pid_of_this_host():
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    here = socket.gethostname()
    assert pid_alive(os.getpid()) and not pid_alive(int(dead.stdout))
    assert owner_alive(labels(pid=str(os.getpid()), host=here))
    assert not owner_alive(labels(pid=dead.stdout.strip(), host=here))
    assert not owner_alive(labels(pid=str(os.getpid()), host=here + "-elsewhere"))
    assert not owner_alive(labels(host=here)) and not owner_alive(None)
