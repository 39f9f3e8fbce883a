"""Removing images: one by tag, or every env/instance image this project built that no task still needs."""

from __future__ import annotations

from collections.abc import Iterable

import docker
from docker.errors import APIError
from requests.exceptions import RequestException

from envs.spec import TaskSpec
from harness.docker_env import LABEL, get_client
from harness.images.core import KINDS, ImageBuildError, base_for, base_image_id, env_tag, instance_tag


def remove_image(tag: str) -> bool:
    """Remove one image (best effort: False when it is in use or already gone)."""
    try:
        docker.from_env(timeout=600).images.remove(tag, force=True)
        return True
    except (APIError, docker.errors.DockerException, RequestException, OSError):
        return False


def project_images(client: docker.DockerClient) -> list:
    """Env and instance images `harness.images` built (by label)."""
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
    keep: set[str] = set()
    specs = list(specs)
    known_ids = {spec.instance_id for spec in specs}
    for spec in specs:
        try:
            base = base_for(spec, client)[0]
        except ImageBuildError:  # no base for this task: nothing of it to keep
            continue
        bid = base_image_id(client, base)
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
        img_labels = img.labels or {}
        if img_labels.get(f"{LABEL}.prebuilt") and img_labels.get(f"{LABEL}.instance_id") in known_ids:
            continue  # the adapter of a known task's prebuilt image
        name = img.tags[0] if img.tags else img.short_id
        if not dry_run:
            try:
                slow.images.remove(img.id, force=True)
            except (APIError, docker.errors.DockerException, RequestException, OSError):
                continue  # in use by a container, or gone already: leave it for the next prune
        removed.append(name)
    return removed
