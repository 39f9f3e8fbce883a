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
from trajectories.errors import SrlSweError

BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "git", "patch", "ca-certificates", "procps")
RECIPE_VERSION = 2
SANDBOX_USER = "srl"
SANDBOX_UID = 1000


#: The Debian release whose python3 is each Python version (the releases the configured mirror serves).
PYTHON_DISTROS = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
DEFAULT_DISTRO = "bookworm"
#: A base image the user chose for every task (any Python); `--base-image` sets it.
BASE_IMAGE_ENV = "SRL_SWE_BASE_IMAGE"


class BaseImageError(SrlSweError, RuntimeError):
    """The base image cannot be built here; the message says why and what to do."""


class PythonUnavailable(BaseImageError):
    """No offline source has the Python a task needs; the message names it, the tasks and the ways out."""


def default_tag(distro: str = DEFAULT_DISTRO) -> str:
    return f"srl-base:{distro}"


def user_base_image() -> str | None:
    """The base image the user named for every task (``--base-image`` / ``SRL_SWE_BASE_IMAGE``)."""
    return os.environ.get(BASE_IMAGE_ENV) or None


def distro_for_python(python: str | None, tasks: list[str] | tuple[str, ...] = ()) -> str:
    """The Debian release that ships `python` (None: the default release). A version no release here
    ships raises `PythonUnavailable` naming the version, the `tasks` that need it and the ways out."""
    if python is None:
        return DEFAULT_DISTRO
    distro = PYTHON_DISTROS.get(python)
    if distro is not None:
        return distro
    names = ", ".join(tasks[:8]) + (f" and {len(tasks) - 8} more" if len(tasks) > 8 else "")
    offered = ", ".join(f"{v} ({d})" for v, d in PYTHON_DISTROS.items())
    raise PythonUnavailable(
        f"Python {python} is needed by {names or 'this task'}, but no offline source has it here: the "
        f"Debian mirror's releases ship Python {offered}. Ways out: `--base-image IMAGE` naming an image "
        "that has it (its python3 is used for every task), a prebuilt task image "
        "(`--image-source prebuilt`), or a machine online whose registry has such an image "
        f"(e.g. `--base-image python:{python}-slim` after `docker pull`); or set `env.python` in the task "
        "file to a version listed above."
    )


def recipe(distro: str = DEFAULT_DISTRO, from_image: str | None = None) -> dict:
    return {
        "version": RECIPE_VERSION,
        "distro": distro,
        "from_image": from_image,
        "packages": list(BASE_PACKAGES),
        "user": [SANDBOX_USER, SANDBOX_UID],
    }


def recipe_hash(distro: str = DEFAULT_DISTRO, from_image: str | None = None) -> str:
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


def ensure_user_base_image(
    client: docker.DockerClient, image: str, log: Callable[[str], None] | None = None
) -> str:
    """A base image for every task from the user's `image`: used as is when it is one of ours (built
    here, labelled), else derived from it (sandbox user, git) as ``srl-base:user-<name>``."""
    try:
        img = client.images.get(image)
    except ImageNotFound:
        raise BaseImageError(
            f"base image {image!r} (--base-image / {BASE_IMAGE_ENV}) is not on this machine; "
            f"`docker pull {image}` where a registry is reachable, or build one with `srl image base`"
        ) from None
    if (img.labels or {}).get("srl-swe.kind") == "base":
        return image
    slug = re.sub(r"[^a-z0-9_.-]", "-", image.lower())[:100]
    return ensure_base_image(
        client, distro=f"user-{slug}", from_image=image, tag=f"srl-base:user-{slug}", log=log
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
    distro: str = DEFAULT_DISTRO,
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
