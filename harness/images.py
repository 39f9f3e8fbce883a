"""Env and instance images for tasks: base -> env -> instance, each tagged by a content hash.

- base: ``harness.base_image`` (Debian + python3 + git), built once.
- env (``srl-env:<hash>``): a venv at /opt/venv (the base's Python) with the task's test
  requirements and system packages. Shared by every task with the same environment recipe.
- instance (``srl-instance:<id>-<hash>``): the repo at /testbed at its base commit (nothing later in
  its git history, see `envs.repos`), installed by the task's install commands. Working tree clean.

The tag of each image is a hash of its recipe (`TaskSpec.env_recipe` / `instance_recipe`) and of the
image below it, so an unchanged task never rebuilds and any changed recipe always does. Sandboxes have
no network, and neither do our pip installs: Python packages are downloaded on the host (with the
host's pip configuration) into a cache, copied into the build context, and installed with
``pip install --no-index --find-links``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import docker
from docker.errors import APIError, ImageNotFound
from requests.exceptions import RequestException

from envs.spec import TESTBED, VENV, WHEELS_DIR, TaskSpec
from harness.base_image import SANDBOX_UID, ensure_base_image
from harness.docker_env import LABEL, cache_dir, get_client, labels

#: The Python of the base image; the only one env images support.
BASE_PYTHON = "3.11"
ENV_REPO = "srl-env"
INSTANCE_REPO = "srl-instance"
KINDS = ("env", "instance")

Log = Callable[[str], None]


class ImageBuildError(RuntimeError):
    """Building an image failed; the message names the task, the image and the build log."""


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _short(text: str, n: int = 16) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


# --------------------------------------------------------------------------------------- tags


def base_image_id(client: docker.DockerClient, base: str) -> str:
    return client.images.get(base).id


def env_tag(spec: TaskSpec, base_id: str) -> str:
    return f"{ENV_REPO}:{_short(spec.env_key + base_id)}"


def instance_tag(spec: TaskSpec, base_id: str) -> str:
    name = re.sub(r"[^a-z0-9_.-]", "-", spec.instance_id.lower())[:100]
    return f"{INSTANCE_REPO}:{name}-{_short(spec.instance_key + env_tag(spec, base_id), 12)}"


def image_tags(
    spec: TaskSpec, client: docker.DockerClient | None = None, base: str | None = None
) -> tuple[str, str]:
    """(env tag, instance tag) of `spec` on this machine (they depend on the base image's id)."""
    client = client or get_client()
    base = base or ensure_base_image(client=client)
    bid = base_image_id(client, base)
    return env_tag(spec, bid), instance_tag(spec, bid)


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


# --------------------------------------------------------------------------------------- wheelhouse


def wheel_cache() -> Path:
    return cache_dir() / "wheels"


def pip_download(requirements: Iterable[str], key: str, log: Log | None = None) -> Path:
    """Download `requirements` (pip requirement strings or local project dirs) with the host's pip into
    a cached wheelhouse named by `key`; reuse it when it is complete."""
    dest = wheel_cache() / key
    done = dest / ".complete"
    if done.exists():
        return dest
    reqs = list(requirements)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if reqs:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(tmp)]
        host_py = f"{sys.version_info.major}.{sys.version_info.minor}"
        if host_py != BASE_PYTHON:
            cmd += ["--python-version", BASE_PYTHON, "--only-binary=:all:"]
        cmd += reqs
        if log:
            log(f"pip download (host) {' '.join(reqs)}")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            err = "\n".join(line for line in proc.stderr.splitlines() if "is ignored" not in line)
            raise ImageBuildError(f"pip download {' '.join(reqs)} failed on the host:\n{err[-3000:]}")
    (tmp / ".complete").write_text(json.dumps(reqs))
    try:
        tmp.rename(dest)
    except OSError:  # another build finished the same wheelhouse first
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _copy_wheels(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name.startswith("."):
            continue
        target = dest / f.name
        if target.exists():
            continue
        try:
            os.link(f, target)
        except OSError:
            shutil.copy2(f, target)


def build_requirements(repo_dir: Path) -> list[str]:
    """The repo's PEP 518 build requirements (setuptools + wheel when it declares none)."""
    default = ["setuptools>=40.8.0", "wheel"]
    pyproject = repo_dir / "pyproject.toml"
    if not pyproject.exists():
        return default
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return default + ["setuptools_scm", "hatchling", "flit_core"]
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return default
    reqs = data.get("build-system", {}).get("requires")
    return list(reqs) if isinstance(reqs, list) and reqs else default


# --------------------------------------------------------------------------------------- docker build


def _build(
    client: docker.DockerClient,
    context: Path,
    tag: str,
    image_labels: dict[str, str],
    log_path: Path,
    timeout: int,
    what: str,
    nocache: bool = False,
    notes: list[str] | None = None,
) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    error: str | None = None
    with log_path.open("w", encoding="utf-8") as log:
        log.write(f"# {what}: docker build -t {tag} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        for note in notes or []:
            log.write(f"# {note}\n")
        log.write((context / "Dockerfile").read_text() + "\n# ---- build output ----\n")
        try:
            for chunk in client.api.build(
                path=str(context),
                tag=tag,
                labels=image_labels,
                rm=True,
                forcerm=True,
                decode=True,
                pull=False,
                nocache=nocache,
                timeout=timeout,
            ):
                if "stream" in chunk:
                    log.write(chunk["stream"])
                elif "error" in chunk:
                    error = chunk["error"]
                    log.write(f"ERROR: {error}\n")
                elif "status" in chunk:
                    log.write(chunk["status"] + "\n")
        except (APIError, docker.errors.DockerException, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.write(f"ERROR: {error}\n")
    if error is not None:
        tail = "".join(log_path.read_text(encoding="utf-8").splitlines(keepends=True)[-25:])
        raise ImageBuildError(
            f"{what} failed: {error.strip()}\nbuild log: {log_path}\n--- last lines ---\n{tail}"
        )


def default_log_dir(spec: TaskSpec) -> Path:
    return Path("runs") / "build_logs" / spec.instance_id


def _env_dockerfile(base: str, spec: TaskSpec) -> str:
    lines = [f"FROM {base}"]
    if spec.env.system_packages:
        pkgs = " ".join(sorted(set(spec.env.system_packages)))
        lines.append(
            "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
            f"{pkgs} && rm -rf /var/lib/apt/lists/*"
        )
    reqs = " ".join(json.dumps(r) for r in spec.env.pip_packages)
    lines += [
        f"RUN install -d -o {SANDBOX_UID} -g {SANDBOX_UID} {VENV} {WHEELS_DIR} {TESTBED}",
        f"COPY --chown={SANDBOX_UID}:{SANDBOX_UID} wheels/ {WHEELS_DIR}/",
        f"USER {SANDBOX_UID}",
        "ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        f"RUN python3 -m venv {VENV}"
        + (f" && {VENV}/bin/pip install --no-index --find-links {WHEELS_DIR} {reqs}" if reqs else ""),
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
) -> str:
    """Tag of the env image for `spec`, built when missing (or `rebuild`)."""
    client = client or get_client()
    base = base or ensure_base_image(client=client)
    tag = env_tag(spec, base_image_id(client, base))
    say = log or (lambda _m: None)
    with _lock(tag):
        if not rebuild and image_exists(client, tag):
            return tag
        log_dir = log_dir or default_log_dir(spec)
        notes = []
        if spec.env.python and spec.env.python != BASE_PYTHON:
            notes.append(
                f"WARNING: task {spec.instance_id} asks for Python {spec.env.python}, but only the base image's "
                f"Python {BASE_PYTHON} is supported here; building with {BASE_PYTHON}"
            )
            say(notes[-1])
        reqs = list(spec.env.pip_packages)
        wheels = pip_download(reqs, "env-" + _short(json.dumps([BASE_PYTHON, reqs])), say) if reqs else None
        with tempfile.TemporaryDirectory(prefix="srl-env-") as tmp:
            ctx = Path(tmp)
            (ctx / "wheels").mkdir()
            if wheels is not None:
                _copy_wheels(wheels, ctx / "wheels")
            (ctx / "Dockerfile").write_text(_env_dockerfile(base, spec))
            say(f"building env image {tag}")
            _build(
                client,
                ctx,
                tag,
                labels(kind="env", key=spec.env_key, base=base),
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
) -> str:
    """Tag of the instance image for `spec` (repo at /testbed, venv on PATH, tree clean at
    base_commit), building the env and instance images when missing. `rebuild` rebuilds both."""
    client = client or get_client()
    base = ensure_base_image(client=client)
    bid = base_image_id(client, base)
    tag = instance_tag(spec, bid)
    say = log or (lambda _m: None)
    if not rebuild and image_exists(client, tag):
        return tag
    log_dir = log_dir or default_log_dir(spec)
    env = ensure_env_image(spec, client=client, rebuild=rebuild, log_dir=log_dir, log=log, base=base)
    with _lock(tag):
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
            key = "inst-" + _short(json.dumps([BASE_PYTHON, spec.repo, spec.base_commit, reqs]))
            wheels = pip_download([*reqs, str(ctx / "testbed")], key, say)
            _copy_wheels(wheels, ctx / "wheels")
            (ctx / "install.sh").write_text(spec.install_script())
            (ctx / "Dockerfile").write_text(_instance_dockerfile(env))
            say(f"building instance image {tag}")
            _build(
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


# --------------------------------------------------------------------------------------- prune


def remove_image(tag: str) -> bool:
    """Remove one image (best effort: False when it is in use or already gone)."""
    try:
        docker.from_env(timeout=600).images.remove(tag, force=True)
        return True
    except (APIError, docker.errors.DockerException, RequestException, OSError):
        return False


def project_images(client: docker.DockerClient) -> list:
    """Env and instance images this module built (by label)."""
    out = []
    for img in client.images.list(filters={"label": LABEL}):
        if (img.labels or {}).get(f"{LABEL}.kind") in KINDS:
            out.append(img)
    return out


def prune_images(
    specs: Iterable[TaskSpec], client: docker.DockerClient | None = None, dry_run: bool = False
) -> list[str]:
    """Remove env/instance images that no task in `specs` needs; returns the removed tags (or ids)."""
    client = client or get_client()
    base = ensure_base_image(client=client)
    bid = base_image_id(client, base)
    keep: set[str] = set()
    for spec in specs:
        keep.add(env_tag(spec, bid))
        keep.add(instance_tag(spec, bid))
    removed: list[str] = []
    # Removing a big image takes longer than the short default timeout of `get_client()`.
    slow = docker.from_env(timeout=600) if not dry_run else client
    # Instances first: their env images cannot go while a child exists.
    images = sorted(project_images(client), key=lambda i: (i.labels or {}).get(f"{LABEL}.kind") != "instance")
    for img in images:
        if set(img.tags) & keep:
            continue
        name = img.tags[0] if img.tags else img.short_id
        if not dry_run:
            try:
                slow.images.remove(img.id, force=True)
            except (APIError, docker.errors.DockerException, RequestException, OSError):
                continue  # in use by a container, or gone already: leave it for the next prune
        removed.append(name)
    return removed
