"""What the image modules share: where images come from (``IMAGE_SOURCES``), the error type, tags by
content hash, the base image per Python (and the Python inside an image), and the logged ``docker build``.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import docker
from docker.errors import APIError, ImageNotFound

from envs.spec import TaskSpec
from harness.base_image import (
    PYTHON_DISTROS,
    BaseImageError,
    distro_for_python,
    ensure_base_image,
    ensure_user_base_image,
    user_base_image,
)
from harness.docker_env import get_client, labels
from trajectories.errors import SrlSweError

#: The Python of the default base image (bookworm), used by tasks that do not name one.
BASE_PYTHON = "3.11"
#: Where images come from: built here, prebuilt (published) images, or prebuilt when present else built.
IMAGE_SOURCES = ("auto", "build", "prebuilt")
IMAGE_SOURCE_ENV = "SRL_SWE_IMAGE_SOURCE"
PREBUILT_ENV_NAME = "testbed"
PREBUILT_CONDA = "/opt/miniconda3"
ENV_REPO = "srl-env"
INSTANCE_REPO = "srl-instance"
KINDS = ("env", "instance")

Log = Callable[[str], None]


class ImageBuildError(SrlSweError, RuntimeError):
    """Building an image failed; the message names the task, the image and the build log."""


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def lock_for(key: str) -> threading.Lock:
    """One lock per image tag in this process: two threads never build the same image at once."""
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def short_hash(text: str, n: int = 16) -> str:
    """The first `n` hex digits of the SHA-256 of `text` (the content hash in image tags)."""
    return hashlib.sha256(text.encode()).hexdigest()[:n]


# --------------------------------------------------------------------------------------- tags


def base_image_id(client: docker.DockerClient, base: str) -> str:
    return client.images.get(base).id


def env_tag(spec: TaskSpec, base_id: str) -> str:
    return f"{ENV_REPO}:{short_hash(spec.env_key + base_id)}"


def instance_tag(spec: TaskSpec, base_id: str) -> str:
    name = re.sub(r"[^a-z0-9_.-]", "-", spec.instance_id.lower())[:100]
    return f"{INSTANCE_REPO}:{name}-{short_hash(spec.instance_key + env_tag(spec, base_id), 12)}"


def image_tags(
    spec: TaskSpec, client: docker.DockerClient | None = None, base: str | None = None
) -> tuple[str, str]:
    """(env tag, instance tag) of `spec` on this machine (they depend on the base image's id)."""
    client = client or get_client()
    base = base or base_for(spec, client)[0]
    bid = base_image_id(client, base)
    return env_tag(spec, bid), instance_tag(spec, bid)


# --------------------------------------------------------------------------------------- base per Python

_probed: dict[str, str] = {}


def image_python_full(client: docker.DockerClient, image: str) -> str:
    """The full version (``3.11.2``) of ``python3`` in `image` (asked once per image id, in a throwaway
    container)."""
    iid = base_image_id(client, image)
    if iid not in _probed:
        out = client.containers.run(
            image,
            ["python3", "-c", "import platform; print(platform.python_version())"],
            remove=True,
            network_mode="none",
            labels=labels(kind="probe"),
        )
        _probed[iid] = out.decode().strip()
    return _probed[iid]


def image_python(client: docker.DockerClient, image: str) -> str:
    """``major.minor`` of ``python3`` in `image` (from the one probe of `image_python_full`)."""
    return ".".join(image_python_full(client, image).split(".")[:2])


def base_for(spec: TaskSpec, client: docker.DockerClient, log: Log | None = None) -> tuple[str, str]:
    """(base image tag, its Python) for `spec`, building the base when missing.

    The user's ``--base-image`` (``SRL_SWE_BASE_IMAGE``) serves every task; otherwise the Debian
    release that ships the task's ``env.python``. A Python no offline source has raises
    ``ImageBuildError`` naming the version, the task and the ways out.
    """
    user = user_base_image()
    try:
        if user:
            tag = ensure_user_base_image(client, user, log=log)
            return tag, image_python(client, tag)
        distro = distro_for_python(spec.env.python, [spec.instance_id])
        tag = ensure_base_image(client=client, distro=distro, log=log)
    except BaseImageError as exc:
        raise ImageBuildError(str(exc)) from exc
    return tag, {d: v for v, d in PYTHON_DISTROS.items()}[distro]


def check_pythons(specs: Iterable[TaskSpec]) -> None:
    """Raise `ImageBuildError` listing every task whose Python no offline source has (before any build)."""
    if user_base_image():
        return
    need: dict[str, list[str]] = {}
    for spec in specs:
        if spec.env.python and spec.env.python not in PYTHON_DISTROS:
            need.setdefault(spec.env.python, []).append(spec.instance_id)
    problems = []
    for version, ids in sorted(need.items()):
        try:
            distro_for_python(version, ids)
        except BaseImageError as exc:
            problems.append(str(exc))
    if problems:
        raise ImageBuildError("\n".join(problems))


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


# --------------------------------------------------------------------------------------- docker build


def build_image(
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
    """``docker build`` of `context` as `tag`, its output (after `notes` and the Dockerfile) written to
    `log_path`; an `ImageBuildError` naming `what`, the error and the log's last lines when it fails."""
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
