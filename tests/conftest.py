"""Shared test fixtures and the Docker tier policy.

Tests marked ``docker`` need a daemon. Locally they skip when none can be reached or started; with
``CI=true`` they fail instead, so a CI run can never pass on a silently skipped Docker tier.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Public data files (real trajectories, task rows) live beside the clone in ``../shared/fixtures/``,
#: never in the project; ``SRL_SWE_SHARED_FIXTURES`` points elsewhere. Where they are absent (a clone
#: outside this workplace) the tests that read them skip and say where the files come from.
SHARED_FIXTURES = Path(
    os.environ.get("SRL_SWE_SHARED_FIXTURES") or Path(__file__).resolve().parents[2] / "shared" / "fixtures"
)
_WHERE = (
    "public fixtures come from ../shared/fixtures/ beside the clone (see its README.md and SOURCES.md: "
    "SWE-agent, mini-swe-agent, OpenHands trajectories and SWE-bench rows); set SRL_SWE_SHARED_FIXTURES"
)


def shared_fixture(*parts: str) -> Path:
    """The path of a public fixture file or folder under ``../shared/fixtures``; skips the calling test
    when it is not there. The one way tests reach public data files."""
    path = SHARED_FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{'/'.join(parts)} not found at {path}: {_WHERE}")
    return path


def shared_files(*parts: str, pattern: str = "*") -> list[Path]:
    """Sorted files matching `pattern` in a shared fixture folder, for parametrize at import time
    (an empty list, so an empty parameter set that pytest skips, where the folder is absent)."""
    return sorted(SHARED_FIXTURES.joinpath(*parts).glob(pattern))


#: Skip marker for tests that need the shared fixtures as a whole.
needs_shared = pytest.mark.skipif(not SHARED_FIXTURES.is_dir(), reason=_WHERE)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    """A tiny random causal LM (a real checkpoint directory), one per test module."""
    from srl_agent.testing import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def steps(tmp_path_factory) -> Path:
    """A tiny step-wise SRL data set, one per test module."""
    from srl_agent.testing import build_tiny_step_dataset

    return build_tiny_step_dataset(tmp_path_factory.mktemp("steps") / "ds")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Root of the shared public fixtures (skips when absent)."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(_WHERE)
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def docker_client():
    """A docker SDK client to a running daemon (started by us where possible)."""
    from harness.docker_env import DockerUnavailable, get_client

    try:
        return get_client()
    except DockerUnavailable as exc:
        if _in_ci():
            pytest.fail(f"CI=true and Docker is not available: {exc}")
        pytest.skip(f"Docker is not available: {exc}")


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    """Tag of the offline base image, built once if missing."""
    from harness.base_image import ensure_base_image

    return ensure_base_image(client=docker_client)


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if any container this test process labelled is still there (and remove it)."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
    except Exception:
        return
    import sys

    if "harness.sandbox" in sys.modules:  # this process's idle network namespaces go now, not at exit
        sys.modules["harness.sandbox"].close_netns_pool()
    left = client.api.containers(all=True, filters={"label": ["srl-swe", f"srl-swe.pid={os.getpid()}"]})
    for c in left:
        client.api.remove_container(c["Id"], force=True)
    if left:
        print(f"\nERROR: {len(left)} container(s) labelled srl-swe were left by the tests (now removed)")
        session.exitstatus = 1


def _ours(pid_label: str | None) -> bool:
    """Whether a container labelled with this owner pid can be this test run's: made by this process or a
    process it started (or one that has exited: its leftovers count), not by an unrelated live process on
    the same Docker daemon (another engineer's run)."""
    try:
        pid = int(pid_label or "")
    except ValueError:
        return True
    me = os.getpid()
    while pid > 1:
        if pid == me:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True  # exited (or not on this host's /proc): count it
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the parent pid
    return False


def _sandboxes_left(client, *label_filters: str) -> list[dict]:
    found = client.api.containers(all=True, filters={"label": ["srl-swe", *label_filters]})
    return [
        c
        for c in found
        if (c.get("Labels") or {}).get("srl-swe.kind") != "netns"
        and _ours((c.get("Labels") or {}).get("srl-swe.pid"))
    ]


@pytest.fixture()
def sandboxes_left():
    """`sandboxes_left(client, *label_filters)`: labelled containers of this test run (see `_ours`: not an
    unrelated live process's on a shared daemon) besides this process's idle offline
    network namespaces (kept for reuse until exit; see `harness.sandbox.netns.NetnsPool`)."""
    return _sandboxes_left
