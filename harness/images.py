"""Env and instance images for tasks: base -> env -> instance, each tagged by a content hash.

- base: ``harness.base_image`` (Debian + python3 + git), one per Python: the Debian release that ships
  the task's ``env.python`` (bullseye 3.9, bookworm 3.11, trixie 3.13), or the user's ``--base-image``.
- env (``srl-env:<hash>``): a venv at /opt/venv (the base's Python) with the task's test
  requirements and system packages. Shared by every task with the same environment recipe.
- instance (``srl-instance:<id>-<hash>``): the repo at /testbed at its base commit (nothing later in
  its git history, see `envs.repos`), installed by the task's install commands. Working tree clean.

The tag of each image is a hash of its recipe (`TaskSpec.env_recipe` / `instance_recipe`) and of the
image below it, so an unchanged task never rebuilds and any changed recipe always does. Sandboxes have
no network, and neither do our pip installs: Python packages are downloaded on the host (with the
host's pip configuration) into a cache, copied into the build context, and installed with
``pip install --no-index --find-links``. For a Python other than the host's the wheelhouse holds
binary wheels for that interpreter (``pip download --python-version X.Y --only-binary :all:``); a
top-level requirement with no such wheel comes as its source distribution and is built in the image.

Prebuilt images (``image_source``): SWE-bench's published instance images
(``swebench/sweb.eval.x86_64.<id with "__" as "_1776_">``), SWE-Gym's and SWE-smith's (a row's ``image`` or
``image_name``) are used when present locally (``auto``, ``prebuilt``), pulled where a registry answers
(``prebuilt``). A thin image derived from one (``srl-instance:<id>-prebuilt-<hash>``, labelled) puts the
conda env ``testbed`` first on PATH and lets the sandbox user own /testbed, so our sandbox and scripts run
there as SWE-bench's eval scripts do (``conda activate testbed; cd /testbed``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shlex
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
from harness.base_image import (
    PYTHON_DISTROS,
    SANDBOX_UID,
    SANDBOX_USER,
    BaseImageError,
    distro_for_python,
    ensure_base_image,
    ensure_user_base_image,
    user_base_image,
)
from harness.docker_env import LABEL, cache_dir, get_client, labels
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
    base = base or base_for(spec, client)[0]
    bid = base_image_id(client, base)
    return env_tag(spec, bid), instance_tag(spec, bid)


# --------------------------------------------------------------------------------------- base per Python

_probed: dict[str, str] = {}


def image_python(client: docker.DockerClient, image: str) -> str:
    """``major.minor`` of ``python3`` in `image` (asked once per image id, in a throwaway container)."""
    iid = base_image_id(client, image)
    if iid not in _probed:
        out = client.containers.run(
            image,
            ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            remove=True,
            network_mode="none",
            labels=labels(kind="probe"),
        )
        _probed[iid] = out.decode().strip()
    return _probed[iid]


def image_python_full(client: docker.DockerClient, image: str) -> str:
    """The full version (``3.11.2``) of ``python3`` in `image` (asked once per image id)."""
    iid = base_image_id(client, image)
    key = iid + ":full"
    if key not in _probed:
        out = client.containers.run(
            image,
            ["python3", "-c", "import platform; print(platform.python_version())"],
            remove=True,
            network_mode="none",
            labels=labels(kind="probe"),
        )
        _probed[key] = out.decode().strip()
    return _probed[key]


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


# --------------------------------------------------------------------------------------- wheelhouse


def wheel_cache() -> Path:
    return cache_dir() / "wheels"


def pip_download(
    requirements: Iterable[str],
    key: str,
    log: Log | None = None,
    python: str = BASE_PYTHON,
    image: str | None = None,
    client: docker.DockerClient | None = None,
    exact: bool = False,
) -> Path:
    """Download `requirements` (pip requirement strings, local project dirs) with the host's pip into a
    cached wheelhouse named by `key` for interpreter `python`; reuse it when complete.

    For a Python other than the host's: binary wheels for that interpreter, a top-level requirement that
    has none as its source distribution (built inside the image). The host's pip evaluates environment
    markers for its own interpreter (``exceptiongroup; python_version < "3.11"`` is left out on 3.11), so
    with the target `image` the set is then completed by resolving it there, offline, with the
    interpreter itself (`_complete_in_image`). With `exact` (a task that names its Python) the same
    is done when only the patch level differs (``async-timeout; python_full_version < "3.11.3"``, one of
    Django's test requirements: the host has 3.11.7, bookworm 3.11.2)."""
    complete_in_image = image is not None and (
        python != _host_python()
        or (exact and image_python_full(client or get_client(), image) != platform.python_version())
    )
    dest = wheel_cache() / (key + ("-resolved" if complete_in_image else ""))
    done = dest / ".complete"
    if done.exists():
        return dest
    reqs = list(requirements)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if reqs:
        if log:
            log(f"pip download (host, Python {python}) {' '.join(reqs)}")
        try:
            _download_for(python, reqs, tmp)
            if complete_in_image:
                _complete_in_image(client or get_client(), image, python, reqs, tmp, log)
        except ImageBuildError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    (tmp / ".complete").write_text(json.dumps(reqs))
    try:
        tmp.rename(dest)
    except OSError:  # another build finished the same wheelhouse first
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _host_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


_MISSING_RE = re.compile(r"No matching distribution found for (?P<req>.+?)\s*$", re.MULTILINE)


def _complete_in_image(
    client: docker.DockerClient, image: str, python: str, reqs: list[str], wheels: Path, log: Log | None
) -> None:
    """Resolve `reqs` with `image`'s own interpreter against the wheelhouse (no network, a dry run of
    pip from the wheelhouse's pip wheel); download each requirement it misses for `python` on the host,
    until it resolves."""
    mounts = {str(wheels): {"bind": "/w", "mode": "ro"}}
    copies, args = [], []
    for r in reqs:
        if r.startswith("/"):  # a local project (maybe with extras): a copy, its metadata is built there
            path, _, extras = r.partition("[")
            n = len(mounts)
            mounts[path] = {"bind": f"/src{n}", "mode": "ro"}
            copies.append(f"cp -a /src{n} /tmp/p{n}")
            args.append(f"/tmp/p{n}" + (f"[{extras}" if extras else ""))
        else:
            args.append(r)
    for _ in range(25):
        pip = sorted(wheels.glob("pip-*.whl"))
        if not pip:
            _download_for(python, ["pip"], wheels)
            continue
        resolve = ["python3", f"/w/{pip[-1].name}/pip", "install", "--dry-run", "--ignore-installed"]
        resolve += [
            "--no-index",
            "--find-links",
            "/w",
            "--no-cache-dir",
            "--quiet",
            "--disable-pip-version-check",
        ]
        script = " && ".join([*copies, shlex.join([*resolve, *args])])
        try:
            client.containers.run(
                image,
                ["sh", "-c", script],
                remove=True,
                network_mode="none",
                labels=labels(kind="resolve"),
                user="root",
                volumes=mounts,
                # a dry run with the system's python3: PEP 668 (bookworm and later) would refuse it
                environment={"PIP_BREAK_SYSTEM_PACKAGES": "1"},
            )
            return
        except docker.errors.ContainerError as exc:
            err = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else str(exc)
        m = _MISSING_RE.search(err)
        if not m:
            raise ImageBuildError(
                f"resolving {' '.join(reqs)} for Python {python} in {image} failed:\n{err[-3000:]}"
            )
        # "async-timeout>=4.0.3; python_full_version < '3.11.3' (from redis)": the requirement alone
        missing = re.sub(r"\s*\(from [^)]*\)$", "", m["req"]).split(";", 1)[0].strip().strip("'\"")
        if log:
            log(f"pip download (host, Python {python}) {missing} (a requirement for Python {python} only)")
        _download_for(python, [missing], wheels)
    raise ImageBuildError(f"resolving {' '.join(reqs)} for Python {python}: too many rounds")


_NO_DIST_RE = re.compile(r"No matching distribution found for ([A-Za-z0-9_.\-]+)")


def _pip(args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", *args]
    return subprocess.run(cmd, capture_output=True, text=True)


def _pip_error(args: list[str], proc: subprocess.CompletedProcess) -> ImageBuildError:
    err = "\n".join(line for line in proc.stderr.splitlines() if "is ignored" not in line)
    return ImageBuildError(f"pip download {' '.join(args)} failed on the host:\n{err[-3000:]}")


def _download_for(python: str, args: list[str], dest: Path) -> None:
    """Download `args` into `dest` for interpreter `python` (see `pip_download`)."""
    if python == _host_python():
        proc = _pip(["--dest", str(dest), *args])
        if proc.returncode != 0:
            raise _pip_error(args, proc)
        return
    target = ["--python-version", python, "--implementation", "cp"]
    args = list(args)
    for _ in range(8):  # each round moves one top-level requirement without a wheel to its sdist
        proc = _pip(["--dest", str(dest), *target, "--only-binary=:all:", *args])
        if proc.returncode == 0:
            return
        m = _NO_DIST_RE.search(proc.stderr)
        name = m.group(1).lower().replace("_", "-") if m else None
        top = [
            a
            for a in args
            if name and re.split(r"[<>=!~;\[ ]", a, maxsplit=1)[0].lower().replace("_", "-") == name
        ]
        if not top:
            raise ImageBuildError(
                f"no binary wheel for Python {python} of {name or 'a requirement'} (needed by "
                f"{' '.join(args)}), and only top-level requirements can come as source here:\n"
                + str(_pip_error(args, proc))[-2000:]
            )
        sdist = _pip(["--dest", str(dest), *target, "--no-deps", "--no-binary=:all:", top[0]])
        if sdist.returncode != 0:
            raise _pip_error([top[0]], sdist)
        args = [a for a in args if a != top[0]] + _sdist_requirements(dest, name, python)
    raise ImageBuildError(f"pip download for Python {python}: too many requirements without wheels: {args}")


def _sdist_requirements(dest: Path, name: str, python: str) -> list[str]:
    """Requires-Dist of the source distribution of `name` in `dest` whose markers hold for `python`."""
    import tarfile
    import zipfile
    from email.parser import Parser

    from packaging.requirements import Requirement

    norm = name.replace("-", "_").lower()
    for f in dest.iterdir():
        if not f.name.replace("-", "_").lower().startswith(norm + "_") or f.suffix == ".whl":
            continue
        text = ""
        if f.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(f) as tf:
                member = next(
                    (m for m in tf.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")),
                    None,
                )
                if member is not None:
                    text = tf.extractfile(member).read().decode("utf-8", "replace")
        elif f.suffix == ".zip":
            with zipfile.ZipFile(f) as zf:
                names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/PKG-INFO")]
                text = zf.read(names[0]).decode("utf-8", "replace") if names else ""
        out = []
        for line in Parser().parsestr(text).get_all("Requires-Dist") or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"python_version": python, "extra": ""}):
                req.marker = None
                out.append(str(req))
        return out
    return []


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
    with _lock(tag):
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
                "env-" + _short(json.dumps([python, reqs])),
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
                _copy_wheels(wheels, ctx / "wheels")
            (ctx / "Dockerfile").write_text(_env_dockerfile(base, spec, python))
            say(f"building env image {tag}")
            _build(
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


_EXTRAS_RE = re.compile(r"(?:^|\s)(?:-e\s+)?['\"]?\.\[(?P<extras>[\w,\- ]+)\]")
_REQ_FILE_RE = re.compile(r"(?:-r|--requirement)\s+['\"]?(?P<path>[^\s'\";]+)")
_FOR_FILES_RE = re.compile(r"for f in (?P<paths>[^;]+); do .*-r \"\$f\"")


def install_requirements(spec: TaskSpec, testbed: Path) -> list[str]:
    """What the install commands install besides the project: the project with the extras they name
    (``pip install -e '.[dev]'``), and the lines of the requirement files they read (``-r FILE``; of
    SWE-bench's candidate paths the first the repo has), for the host-side download."""
    extras: list[str] = []
    files: list[str] = []
    for cmd in spec.env.install:
        for m in _EXTRAS_RE.finditer(cmd):
            extras += [e.strip() for e in m["extras"].split(",") if e.strip()]
        m = _FOR_FILES_RE.search(cmd)
        if m:
            found = [p.strip("'\"") for p in m["paths"].split() if (testbed / p.strip("'\"")).is_file()]
            files += found[:1]
        else:
            files += [m["path"] for m in _REQ_FILE_RE.finditer(cmd) if m["path"] != '"$f"']
    project = str(testbed) + (f"[{','.join(dict.fromkeys(extras))}]" if extras else "")
    out = [project]
    for rel in files:
        path = testbed / rel
        if path.is_file():
            out += _requirement_lines(path)
    return out


def _requirement_lines(path: Path, seen: set[Path] | None = None) -> list[str]:
    """Requirement lines of a requirements file (``-r`` followed; editable/local and option lines left
    to the install command itself, as SWE-bench leaves ``-e .`` and ``.[test]``)."""
    seen = seen or set()
    if path in seen or not path.is_file():
        return []
    seen.add(path)
    out = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            out += _requirement_lines(path.parent / line.split(None, 1)[1], seen)
        elif line.startswith(("-", ".", "/")) or "://" in line:
            continue
        else:
            out.append(line)
    return out


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
            wanted = install_requirements(spec, ctx / "testbed")
            key = "inst-" + _short(
                json.dumps([python, spec.repo, spec.base_commit, reqs, [w.replace(tmp, "") for w in wanted]])
            )
            try:
                wheels = pip_download(
                    [*reqs, *wanted], key, say, python, base, client, exact=spec.env.python is not None
                )
            except ImageBuildError as exc:
                raise ImageBuildError(f"task {spec.instance_id}: {exc}") from exc
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


# --------------------------------------------------------------------------------------- prebuilt


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
    tag = f"{INSTANCE_REPO}:{name}-prebuilt-{_short(iid + _prebuilt_dockerfile(image), 12)}"
    with _lock(tag):
        if not rebuild and image_exists(client, tag):
            return tag
        if log:
            log(f"adapting prebuilt image {image}")
        with tempfile.TemporaryDirectory(prefix="srl-prebuilt-") as tmp:
            ctx = Path(tmp)
            (ctx / "Dockerfile").write_text(_prebuilt_dockerfile(image))
            _build(
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
