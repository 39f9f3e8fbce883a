"""The Dockerfile builds offline on the project's base image and drives the host daemon from inside."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


def test_dockerfile_builds_on_base_image_and_runs_a_sandbox(docker_client, base_image, tmp_path):
    ctx = tmp_path / "ctx"
    shutil.copytree(ROOT, ctx, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "__pycache__", "*.egg-info",
                                                             ".docker-wheels", "tests", "benchmarks", "docs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(ctx / ".docker-wheels"), str(ctx)],
                   check=True, capture_output=True)
    tag = "srl-swe-harness-test:latest"
    try:
        subprocess.run(["docker", "build", "-q", "--build-arg", f"BASE_IMAGE={base_image}", "-t", tag,
                        "--label", "srl-swe=1", str(ctx)], check=True, capture_output=True)
        out = subprocess.run(["docker", "run", "--rm", "--label", "srl-swe=1", "-v",
                              "/var/run/docker.sock:/var/run/docker.sock", tag, "sandbox", "exec", "--image",
                              base_image, "--", "echo", "hello from the sandbox"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "hello from the sandbox\n"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
