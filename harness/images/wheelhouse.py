"""The wheelhouse: Python packages downloaded on the host (with the host's pip configuration) into a
cache, for the image's interpreter, and copied into a build context for an offline ``pip install``.
Also what a task's install commands install (``-e '.[extras]'``, ``-r FILE``) and a repo's build requirements.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

import docker

from envs.spec import TaskSpec
from harness.docker_env import cache_dir, get_client, labels
from harness.images.core import BASE_PYTHON, ImageBuildError, Log, image_python_full


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


def copy_wheels(src: Path, dest: Path) -> None:
    """Hard-link (else copy) the wheelhouse `src` into the build context folder `dest`."""
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
