"""Prebuilt (published) instance images: SWE-bench's, SWE-Gym's and a row's own; found here or pulled,
then adapted by a thin labelled image so that our sandboxes and scripts run in them as-is.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import docker
from docker.errors import APIError
from requests.exceptions import RequestException

from envs.spec import TESTBED, TaskSpec
from harness.base_image import SANDBOX_UID, SANDBOX_USER
from harness.docker_env import labels
from harness.images.core import (
    INSTANCE_REPO,
    PREBUILT_CONDA,
    PREBUILT_ENV_NAME,
    ImageBuildError,
    Log,
    build_image,
    default_log_dir,
    image_exists,
    lock_for,
    short_hash,
)


def swebench_image_name(instance_id: str, namespace: str = "swebench") -> str:
    """SWE-bench's published instance image: ``swebench/sweb.eval.x86_64.<id, "__" as "_1776_">:latest``."""
    return f"{namespace}/sweb.eval.x86_64.{instance_id.lower()}:latest".replace("__", "_1776_")


def swegym_image_name(instance_id: str) -> str:
    """SWE-Gym's published instance image: ``xingyaoww/sweb.eval.x86_64.<id, "__" as "_s_">:latest``."""
    return f"xingyaoww/sweb.eval.x86_64.{instance_id.replace('__', '_s_').lower()}:latest"


def prebuilt_names(spec: TaskSpec) -> list[str]:
    """Candidate prebuilt images for `spec`: the row's own (``image``, SWE-smith's ``image_name``), then
    SWE-bench's and SWE-Gym's derived names."""
    meta = spec.metadata or {}
    names = [meta[k] for k in ("image", "image_name") if isinstance(meta.get(k), str) and meta[k]]
    names += [swebench_image_name(spec.instance_id), swegym_image_name(spec.instance_id)]
    return list(dict.fromkeys(names))


def find_prebuilt(
    spec: TaskSpec, client: docker.DockerClient, pull: bool = False, log: Log | None = None
) -> str | None:
    """The first of `prebuilt_names` on this machine; with `pull`, else the first one a registry gives
    (`pull_prebuilt`: a `PrebuiltPullError` when none can be pulled)."""
    for name in prebuilt_names(spec):
        if image_exists(client, name):
            return name
    return pull_prebuilt(spec, client, log) if pull else None


class PrebuiltPullError(ImageBuildError):
    """No prebuilt image of a task could be pulled; the message names each image, why, and the ways out."""


def pull_image(client: docker.DockerClient, name: str, log: Log | None = None) -> str:
    """Pull `name` (``repo[:tag]``, default tag ``latest``) through the daemon, logging each layer as it
    completes; raises `PrebuiltPullError` with the registry's or the daemon's reason."""
    from docker.utils import parse_repository_tag

    repo, tag = parse_repository_tag(name)
    tag = tag or "latest"
    say = log or (lambda _m: None)
    say(f"pulling {repo}:{tag}")
    done = 0
    try:
        for chunk in client.api.pull(repo, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise PrebuiltPullError(f"{repo}:{tag}: {str(chunk['error']).strip()}")
            status = chunk.get("status", "")
            if status in ("Pull complete", "Already exists"):
                done += 1
                say(f"pulling {repo}:{tag}: {done} layer(s) done")
    except APIError as exc:
        raise PrebuiltPullError(f"{repo}:{tag}: {str(exc.explanation or exc).strip()}") from exc
    except (docker.errors.DockerException, RequestException, OSError) as exc:
        raise PrebuiltPullError(f"{repo}:{tag}: {type(exc).__name__}: {exc}") from exc
    if not image_exists(client, f"{repo}:{tag}"):
        raise PrebuiltPullError(f"{repo}:{tag}: the daemon reported no error, but the image is not here")
    return f"{repo}:{tag}"


def pull_prebuilt(spec: TaskSpec, client: docker.DockerClient, log: Log | None = None) -> str:
    """The first of `prebuilt_names` that a registry gives (pulled onto this machine), or a
    `PrebuiltPullError` naming every image tried, why each failed, and the ways out."""
    reasons = []
    for name in prebuilt_names(spec):  # streamed: the client's timeout applies between two messages
        try:
            return pull_image(client, name, log)
        except PrebuiltPullError as exc:
            reasons.append(f"  {exc}")
    raise PrebuiltPullError(
        f"task {spec.instance_id}: no prebuilt image on this machine and none could be pulled "
        f"(tried {', '.join(prebuilt_names(spec))}):\n"
        + "\n".join(reasons)
        + "\nWays out: --image-source build (or auto) builds the image here from the repository; "
        "`docker load -i FILE` an image saved elsewhere with `docker save IMAGE` (a local image is used "
        "as is); or run where that registry is reachable."
    )


def _prebuilt_dockerfile(image: str) -> str:
    env_bin = f"{PREBUILT_CONDA}/envs/{PREBUILT_ENV_NAME}/bin"
    return (
        "\n".join(
            [
                f"FROM {image}",
                "USER root",
                f"RUN (id -u {SANDBOX_USER} >/dev/null 2>&1 || useradd -m -u {SANDBOX_UID} -s /bin/bash "
                f"{SANDBOX_USER}) && chown -R {SANDBOX_UID}:{SANDBOX_UID} {TESTBED} && "
                "git config --system --add safe.directory '*' && "
                "git config --system user.email srl@srl-swe.local && git config --system user.name srl-swe",
                # what `source /opt/miniconda3/bin/activate; conda activate testbed` does for our shells
                f"ENV PATH={env_bin}:{PREBUILT_CONDA}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                f"/sbin:/bin CONDA_DEFAULT_ENV={PREBUILT_ENV_NAME} CONDA_PREFIX={PREBUILT_CONDA}/envs/"
                f"{PREBUILT_ENV_NAME}",
                f"WORKDIR {TESTBED}",
            ]
        )
        + "\n"
    )


def ensure_prebuilt_adapter(
    spec: TaskSpec,
    image: str,
    client: docker.DockerClient,
    rebuild: bool = False,
    log_dir: Path | None = None,
    log: Log | None = None,
) -> str:
    """A labelled image derived from the prebuilt `image` that our sandboxes and scripts run in as-is."""
    iid = client.images.get(image).id
    name = re.sub(r"[^a-z0-9_.-]", "-", spec.instance_id.lower())[:100]
    tag = f"{INSTANCE_REPO}:{name}-prebuilt-{short_hash(iid + _prebuilt_dockerfile(image), 12)}"
    with lock_for(tag):
        if not rebuild and image_exists(client, tag):
            return tag
        if log:
            log(f"adapting prebuilt image {image}")
        with tempfile.TemporaryDirectory(prefix="srl-prebuilt-") as tmp:
            ctx = Path(tmp)
            (ctx / "Dockerfile").write_text(_prebuilt_dockerfile(image))
            build_image(
                client,
                ctx,
                tag,
                labels(kind="instance", key=spec.instance_key, instance_id=spec.instance_id, prebuilt=image),
                (log_dir or default_log_dir(spec)) / "prebuilt.log",
                spec.limits.build_timeout,
                f"adapter of prebuilt image {image} for {spec.instance_id}",
                nocache=rebuild,
            )
    return tag
