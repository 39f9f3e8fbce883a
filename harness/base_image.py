"""The base image every sandbox starts from, built without a registry.

Two recipes:
- debootstrap (default): a minimal Debian rootfs from the Debian mirror this machine's apt is
  configured with (read at run time, never written down), imported with `docker import`;
- `from_image`: derived from a registry image the user already has (e.g. ``python:3.11-slim``).

The image carries the label ``srl-swe.recipe=<hash>``; an existing image with the same recipe hash is
reused, so a second call returns in well under a second.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker
from docker.errors import ImageNotFound

from harness.docker_env import cache_dir, get_client, labels

BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "git", "patch", "ca-certificates", "procps")
RECIPE_VERSION = 2
SANDBOX_USER = "srl"
SANDBOX_UID = 1000


class BaseImageError(RuntimeError):
    """The base image cannot be built here; the message says why and what to do."""


def default_tag(distro: str = "bookworm") -> str:
    return os.environ.get("SRL_SWE_BASE_IMAGE", f"srl-base:{distro}")


def recipe(distro: str = "bookworm", from_image: str | None = None) -> dict:
    return {
        "version": RECIPE_VERSION,
        "distro": distro,
        "from_image": from_image,
        "packages": list(BASE_PACKAGES),
        "user": [SANDBOX_USER, SANDBOX_UID],
    }


def recipe_hash(distro: str = "bookworm", from_image: str | None = None) -> str:
    blob = json.dumps(recipe(distro, from_image), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def debian_mirror() -> str:
    """The Debian mirror apt is configured with on this machine."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.exists():
        for line in deb822.read_text().splitlines():
            if line.startswith("URIs:"):
                uris = line.split(":", 1)[1].split()
                if uris:
                    return uris[0]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+", line)
            if m:
                return m.group(1)
    raise BaseImageError(
        "no Debian mirror configured in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list; "
        "build from a registry image instead: `srl image base --from python:3.11-slim`"
    )


def find_image(client: docker.DockerClient, tag: str, rhash: str) -> str | None:
    """The image id when `tag` exists with the given recipe hash."""
    try:
        img = client.images.get(tag)
    except ImageNotFound:
        return None
    if (img.labels or {}).get("srl-swe.recipe") == rhash:
        return img.id
    return None


def ensure_base_image(
    client: docker.DockerClient | None = None,
    distro: str = "bookworm",
    from_image: str | None = None,
    rebuild: bool = False,
    tag: str | None = None,
    log: Callable[[str], None] | None = None,
) -> str:
    """Return the base image tag, building it only when the recipe changed (or `rebuild`)."""
    client = client or get_client()
    tag = tag or default_tag(distro)
    rhash = recipe_hash(distro, from_image)
    if not rebuild and find_image(client, tag, rhash):
        return tag
    say = log or (lambda _msg: None)
    if from_image:
        _build_from_image(client, tag, from_image, rhash, distro, say)
    else:
        _build_debootstrap(client, tag, distro, rhash, say)
    return tag


def _user_setup_script() -> str:
    return (
        f"(id -u {SANDBOX_USER} >/dev/null 2>&1 || useradd -m -u {SANDBOX_UID} -s /bin/bash {SANDBOX_USER}) && "
        "git config --system user.email srl@srl-swe.local && git config --system user.name srl-swe && "
        "git config --system --add safe.directory '*'"
    )


def _build_from_image(client, tag: str, from_image: str, rhash: str, distro: str, say) -> None:
    say(f"deriving {tag} from {from_image}")
    dockerfile = "\n".join(
        [
            f"FROM {from_image}",
            "RUN set -e; missing=''; for c in git patch python3; do command -v $c >/dev/null || missing=1; done; "
            'if [ -n "$missing" ]; then apt-get update && apt-get install -y --no-install-recommends '
            + " ".join(BASE_PACKAGES)
            + " && rm -rf /var/lib/apt/lists/*; fi",
            f"RUN {_user_setup_script()}",
        ]
    )
    try:
        client.images.build(
            fileobj=io.BytesIO(dockerfile.encode()),
            tag=tag,
            labels=labels(recipe=rhash, distro=distro, kind="base"),
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        tail = "".join(str(x.get("stream", x.get("error", ""))) for x in exc.build_log)[-2000:]
        raise BaseImageError(f"building {tag} from {from_image} failed:\n{tail}") from exc
    except ImageNotFound as exc:
        raise BaseImageError(
            f"image {from_image!r} is not on this machine; `docker pull {from_image}` first"
        ) from exc


def _build_debootstrap(client, tag: str, distro: str, rhash: str, say) -> None:
    if os.geteuid() != 0:
        raise BaseImageError("debootstrap needs root; run as root or use `srl image base --from IMAGE`")
    if shutil.which("debootstrap") is None:
        raise BaseImageError(
            "debootstrap is not installed: `apt-get install -y debootstrap`, or use --from IMAGE"
        )
    mirror = debian_mirror()
    debs = cache_dir() / "debootstrap" / distro
    debs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="srl-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        say(f"debootstrap {distro} (packages: {', '.join(BASE_PACKAGES)})")
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--cache-dir={debs}",
            f"--include={','.join(BASE_PACKAGES)}",
            distro,
            str(rootfs),
            mirror,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BaseImageError(
                f"debootstrap failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}"
            )
        setup = subprocess.run(
            ["chroot", str(rootfs), "sh", "-c", _user_setup_script()], capture_output=True, text=True
        )
        if setup.returncode != 0:
            raise BaseImageError(f"setting up the sandbox user failed:\n{setup.stderr[-2000:]}")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            p = rootfs / junk
            if p.exists():
                for child in p.iterdir():
                    if child.is_file():
                        child.unlink()
        say(f"importing rootfs as {tag}")
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            'CMD ["/bin/bash"]',
        ] + [f'LABEL "{k}"="{v}"' for k, v in labels(recipe=rhash, distro=distro, kind="base").items()]
        repo, _, tg = tag.partition(":")
        client.api.import_image(src=str(tarball), repository=repo, tag=tg or "latest", changes=changes)
