"""Env and instance images built here: the Dockerfiles, `ensure_env_image` and `ensure_instance_image`
(which uses a prebuilt image instead where the image source says so, see `harness.images.prebuilt`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import docker

from envs.spec import TESTBED, VENV, WHEELS_DIR, TaskSpec
from harness.base_image import SANDBOX_UID
from harness.docker_env import get_client, labels
from harness.images.core import (
    BASE_PYTHON,
    IMAGE_SOURCE_ENV,
    IMAGE_SOURCES,
    ImageBuildError,
    Log,
    base_for,
    base_image_id,
    build_image,
    default_log_dir,
    env_tag,
    image_exists,
    instance_tag,
    lock_for,
    short_hash,
)
from harness.images.prebuilt import ensure_prebuilt_adapter, find_prebuilt
from harness.images.wheelhouse import build_requirements, copy_wheels, install_requirements, pip_download


def _env_dockerfile(base: str, spec: TaskSpec, python: str = BASE_PYTHON) -> str:
    lines = [f"FROM {base}"]
    if spec.env.system_packages:
        pkgs = " ".join(sorted(set(spec.env.system_packages)))
        lines.append(
            "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
            f"{pkgs} && rm -rf /var/lib/apt/lists/*"
        )
        if "locales" in spec.env.system_packages:  # SWE-bench's Django specs run under en_US.UTF-8
            lines.append("RUN sed -i '/en_US.UTF-8/s/^# //g' /etc/locale.gen && locale-gen")
    reqs = " ".join(json.dumps(r) for r in spec.env.pip_packages)
    pip = f"{VENV}/bin/pip install --no-index --find-links {WHEELS_DIR}"
    # an older Debian's venv pip predates the wheel tags the host's pip picks: upgrade it from the wheelhouse
    upgrade = f" && {pip} --upgrade pip" if python != BASE_PYTHON else ""
    lines += [
        f"RUN install -d -o {SANDBOX_UID} -g {SANDBOX_UID} {VENV} {WHEELS_DIR} {TESTBED}",
        f"COPY --chown={SANDBOX_UID}:{SANDBOX_UID} wheels/ {WHEELS_DIR}/",
        f"USER {SANDBOX_UID}",
        "ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        f"RUN python3 -m venv {VENV}{upgrade}" + (f" && {pip} {reqs}" if reqs else ""),
        f"ENV VIRTUAL_ENV={VENV} PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
        f"PIP_NO_INDEX=1 PIP_FIND_LINKS={WHEELS_DIR}",
        "USER root",
        f"WORKDIR {TESTBED}",
    ]
    return "\n".join(lines) + "\n"


def _instance_dockerfile(env: str) -> str:
    return (
        "\n".join(
            [
                f"FROM {env}",
                f"COPY --chown={SANDBOX_UID}:{SANDBOX_UID} wheels/ {WHEELS_DIR}/",
                "COPY install.sh /opt/srl/install.sh",
                f"COPY --chown={SANDBOX_UID}:{SANDBOX_UID} testbed/ {TESTBED}/",
                f"USER {SANDBOX_UID}",
                "RUN bash /opt/srl/install.sh",
                "USER root",
                f"WORKDIR {TESTBED}",
            ]
        )
        + "\n"
    )


def ensure_env_image(
    spec: TaskSpec,
    client: docker.DockerClient | None = None,
    rebuild: bool = False,
    log_dir: Path | None = None,
    log: Log | None = None,
    base: str | None = None,
    python: str | None = None,
) -> str:
    """Tag of the env image for `spec`, built when missing (or `rebuild`). `base` and its `python`
    default to `base_for(spec)`."""
    client = client or get_client()
    if base is None:
        base, python = base_for(spec, client, log)
    python = python or BASE_PYTHON
    tag = env_tag(spec, base_image_id(client, base))
    say = log or (lambda _m: None)
    with lock_for(tag):
        if not rebuild and image_exists(client, tag):
            return tag
        log_dir = log_dir or default_log_dir(spec)
        notes = [f"base {base} (Python {python})"]
        if spec.env.python and spec.env.python != python:
            notes.append(
                f"WARNING: task {spec.instance_id} asks for Python {spec.env.python}; the base image "
                f"{base} has Python {python} (--base-image), building with that"
            )
            say(notes[-1])
        reqs = list(spec.env.pip_packages)
        if python != BASE_PYTHON:
            reqs = ["pip", *reqs]
        wheels = (
            pip_download(
                reqs,
                "env-" + short_hash(json.dumps([python, reqs])),
                say,
                python,
                base,
                client,
                exact=spec.env.python is not None,
            )
            if reqs
            else None
        )
        with tempfile.TemporaryDirectory(prefix="srl-env-") as tmp:
            ctx = Path(tmp)
            (ctx / "wheels").mkdir()
            if wheels is not None:
                copy_wheels(wheels, ctx / "wheels")
            (ctx / "Dockerfile").write_text(_env_dockerfile(base, spec, python))
            say(f"building env image {tag}")
            build_image(
                client,
                ctx,
                tag,
                labels(kind="env", key=spec.env_key, base=base, python=python),
                log_dir / "env.log",
                spec.limits.build_timeout,
                f"env image for {spec.instance_id}",
                nocache=rebuild,
                notes=notes,
            )
    return tag


def ensure_instance_image(
    spec: TaskSpec,
    client: docker.DockerClient | None = None,
    rebuild: bool = False,
    log_dir: Path | None = None,
    log: Log | None = None,
    image_source: str | None = None,
) -> str:
    """Tag of the instance image for `spec` (repo at /testbed, venv on PATH, tree clean at
    base_commit), building the env and instance images when missing. `rebuild` rebuilds both.

    `image_source` (default: ``SRL_SWE_IMAGE_SOURCE`` or ``auto``): ``auto`` uses the task's prebuilt
    image when it is on this machine, else builds; ``build`` always builds; ``prebuilt`` uses (or pulls)
    the prebuilt image and fails when there is none."""
    client = client or get_client()
    source = image_source or os.environ.get(IMAGE_SOURCE_ENV) or "auto"
    if source not in IMAGE_SOURCES:
        raise ImageBuildError(f"image source {source!r}: expected one of {', '.join(IMAGE_SOURCES)}")
    if source != "build":
        # prebuilt: present here, else pulled (a PrebuiltPullError names each image and the ways out)
        prebuilt = find_prebuilt(spec, client, pull=source == "prebuilt", log=log)
        if prebuilt is not None:
            return ensure_prebuilt_adapter(spec, prebuilt, client, rebuild=rebuild, log_dir=log_dir, log=log)
    base, python = base_for(spec, client, log)
    bid = base_image_id(client, base)
    tag = instance_tag(spec, bid)
    say = log or (lambda _m: None)
    if not rebuild and image_exists(client, tag):
        return tag
    log_dir = log_dir or default_log_dir(spec)
    env = ensure_env_image(
        spec, client=client, rebuild=rebuild, log_dir=log_dir, log=log, base=base, python=python
    )
    with lock_for(tag):
        if not rebuild and image_exists(client, tag):
            return tag
        from envs.repos import RepoError, export_at_commit  # GitPython: only needed on a cache miss

        location = spec.repo_source or spec.repo
        with tempfile.TemporaryDirectory(prefix="srl-instance-") as tmp:
            ctx = Path(tmp)
            say(f"exporting {location} at {spec.base_commit[:12]}")
            try:
                export_at_commit(location, spec.base_commit, ctx / "testbed")
            except RepoError as exc:
                raise ImageBuildError(f"task {spec.instance_id}: {exc}") from exc
            reqs = [*build_requirements(ctx / "testbed"), "setuptools", "wheel"]
            wanted = install_requirements(spec, ctx / "testbed")
            key = "inst-" + short_hash(
                json.dumps([python, spec.repo, spec.base_commit, reqs, [w.replace(tmp, "") for w in wanted]])
            )
            try:
                wheels = pip_download(
                    [*reqs, *wanted], key, say, python, base, client, exact=spec.env.python is not None
                )
            except ImageBuildError as exc:
                raise ImageBuildError(f"task {spec.instance_id}: {exc}") from exc
            copy_wheels(wheels, ctx / "wheels")
            (ctx / "install.sh").write_text(spec.install_script())
            (ctx / "Dockerfile").write_text(_instance_dockerfile(env))
            say(f"building instance image {tag}")
            build_image(
                client,
                ctx,
                tag,
                labels(kind="instance", key=spec.instance_key, instance_id=spec.instance_id, env=env),
                log_dir / "instance.log",
                spec.limits.build_timeout,
                f"instance image for {spec.instance_id}",
                nocache=rebuild,
            )
    return tag
