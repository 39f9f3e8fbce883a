"""Shared test fixtures and the Docker tier policy.

Tests marked ``docker`` need a daemon. Locally they skip when none can be reached or started; with
``CI=true`` they fail instead, so a CI run can never pass on a silently skipped Docker tier.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


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
    return FIXTURES


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


def _sandboxes_left(client, *label_filters: str) -> list[dict]:
    found = client.api.containers(all=True, filters={"label": ["srl-swe", *label_filters]})
    return [c for c in found if (c.get("Labels") or {}).get("srl-swe.kind") != "netns"]


@pytest.fixture()
def sandboxes_left():
    """`sandboxes_left(client, *label_filters)`: labelled containers besides this process's idle offline
    network namespaces (kept for reuse until exit; see `harness.sandbox._NetnsPool`)."""
    return _sandboxes_left
