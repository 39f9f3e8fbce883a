"""Repositories built from source distributions on the package index (``pypi:NAME==VERSION``).

`sdist_repo` downloads a release's source distribution with the machine's own pip (its configured
index, proxy, certificates and cache: ``pip download --no-binary :all: --no-deps``), unpacks it in
memory (the top folder stripped) and stores it as one *deterministic* git commit in a bare repository
per package under the cache (``$SRL_SWE_CACHE/pypi`` or ``~/.cache/srl-swe/pypi``):

- author and committer ``srl-swe <srl-swe@localhost>`` at a fixed date, message
  ``"NAME VERSION (source distribution)"``, no parent;
- file modes 100755 only where the archive entry had an execute bit, else 100644 (symlinks 120000);
  no directories of their own (git has none), and no ``*.egg-info/`` folders (build output that
  ``pip install -e .`` rewrites, which would leave the tree dirty);

so the commit hash depends only on the archive's files and is the same on every machine. Every
release of a package is a root commit in the same repository (ref ``refs/releases/VERSION``), which
makes diffs between releases plain ``git diff A B``; `child_commit` adds commits on top of one (the
mutated trees of synthesized tasks). Once a release is in the cache nothing calls pip again: it works
offline.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from envs.repos import RepoError

PREFIX = "pypi:"
AUTHOR = "srl-swe"
EMAIL = "srl-swe@localhost"
#: 2000-01-01T00:00:00Z: the date of every commit made here (fixed so hashes do not depend on time).
EPOCH = 946684800

_SOURCE_RE = re.compile(r"^pypi:\s*([A-Za-z0-9][A-Za-z0-9._\-]*)\s*==\s*([A-Za-z0-9][A-Za-z0-9.+!_\-]*)\s*$")
_FROM_VERSIONS_RE = re.compile(r"\(from versions: ([^)]*)\)")
_ARCHIVES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")


def parse_pypi_source(text: str) -> tuple[str, str] | None:
    """``(name, version)`` of a ``pypi:NAME==VERSION`` source, None for any other text.

    Raises `RepoError` for text that starts with ``pypi:`` but is not of that form.
    """
    if not isinstance(text, str) or not text.startswith(PREFIX):
        return None
    m = _SOURCE_RE.match(text)
    if not m:
        raise RepoError(
            f"repo source {text!r}: expected pypi:NAME==VERSION (an exact release, e.g. pypi:cachetools==5.3.0)"
        )
    return m.group(1), m.group(2)


def pypi_cache_dir(cache: Path | None = None) -> Path:
    if cache is not None:
        return Path(cache)
    base = os.environ.get("SRL_SWE_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "srl-swe") / "pypi"


def _norm(name: str) -> str:
    return canonicalize_name(name)


#: Version of the commit format above (author, date, message, modes); bump it when any of them changes:
#: repositories and index entries live under ``v<N>/`` so an old cache is never mixed with a new one
#: (the downloaded archives in ``sdists/`` are shared).
FORMAT = 2


def _store(cache: Path | None) -> Path:
    return pypi_cache_dir(cache) / f"v{FORMAT}"


def package_repo_path(name: str, cache: Path | None = None) -> Path:
    """The bare repository that holds every cached release of `name`."""
    return _store(cache) / "repos" / f"{_norm(name)}.git"


# ------------------------------------------------------------------------------------------- git


def _git(repo: Path, *args: str, input: bytes | None = None, env: dict | None = None) -> str:
    full_env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C", **(env or {})}
    proc = subprocess.run(
        ["git", f"--git-dir={repo}", *args], input=input, capture_output=True, env=full_env, check=False
    )
    if proc.returncode != 0:
        raise RepoError(
            f"git {' '.join(args[:2])} in {repo} failed: {proc.stderr.decode(errors='replace').strip()[-500:]}"
        )
    return proc.stdout.decode(errors="replace")


def _init_repo(path: Path) -> None:
    if (path / "HEAD").exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "--bare", "--quiet", str(path)], check=True, capture_output=True)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside `path` (processes building the same package wait for each other)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _data(payload: bytes) -> bytes:
    return b"data %d\n" % len(payload) + payload + b"\n"


def _fast_import(repo: Path, ref: str, parent: str | None, message: str, ops: list[bytes]) -> str:
    """One deterministic commit on `ref` through ``git fast-import``; returns its hash."""
    who = f"{AUTHOR} <{EMAIL}> {EPOCH} +0000".encode()
    stream = [b"reset " + ref.encode() + b"\n"]
    if parent:
        stream.append(b"from " + parent.encode() + b"\n\n")
    stream += [
        b"commit " + ref.encode() + b"\n",
        b"author " + who + b"\n",
        b"committer " + who + b"\n",
        _data(message.rstrip("\n").encode() + b"\n"),  # as `git commit -m` stores it
    ]
    if parent:
        stream.append(b"from " + parent.encode() + b"\n")
    stream += ops
    stream.append(b"\n")
    _git(repo, "fast-import", "--quiet", "--force", input=b"".join(stream))
    return _git(repo, "rev-parse", "--verify", f"{ref}^{{commit}}").strip()


def _modify(path: str, mode: str, content: bytes) -> bytes:
    return f"M {mode} inline {_quote(path)}\n".encode() + _data(content)


def _quote(path: str) -> str:
    """fast-import takes a path as the rest of the line; C-style quotes only where that is ambiguous."""
    if path.startswith('"') or "\n" in path:
        return json.dumps(path, ensure_ascii=False)
    return path


# ------------------------------------------------------------------------------------------- pip


def _pip(args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", *args]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)


def _offered(output: str) -> list[str] | None:
    m = _FROM_VERSIONS_RE.search(output)
    if not m:
        return None
    text = m.group(1).strip()
    return [] if text == "none" else [v.strip() for v in text.split(",") if v.strip()]


def _describe_offer(name: str, offered: list[str], wanted: str | None = None) -> str:
    if not offered:
        return f"the index has no source distribution of {name!r} (check the name)"
    shown = _sorted_versions(offered)
    text = f"the index offers {len(shown)} source distributions of {name}"
    try:
        want = Version(wanted) if wanted else None
    except InvalidVersion:
        want = None
    if want is not None:
        at = sum(Version(v) < want for v in shown)
        near = shown[max(0, at - 3) : at + 3]
        text += f"; nearest to {wanted}: {', '.join(near)}"
    return text + f"; newest: {', '.join(shown[-5:])}"


def _sorted_versions(versions: list[str]) -> list[str]:
    good = []
    for v in set(versions):
        try:
            good.append((Version(v), v))
        except InvalidVersion:
            continue
    return [v for _, v in sorted(good)]


def release_versions(name: str) -> list[str]:
    """Versions of `name` that have a source distribution on the index, oldest first."""
    proc = _pip(
        ["download", "--no-binary", ":all:", "--no-deps", "-d", tempfile.gettempdir(), f"{name}==0+srl.probe"]
    )
    offered = _offered(proc.stdout + proc.stderr)
    if offered is None:
        raise RepoError(f"pypi:{name}: cannot list versions: {_pip_error(proc)}")
    return _sorted_versions(offered)


def _pip_error(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip() and "WARNING" not in ln]
    return " | ".join(lines[-4:])[-600:] or f"pip exited with {proc.returncode}"


def download_sdist(name: str, version: str, cache: Path | None = None) -> Path:
    """The source distribution of NAME==VERSION in the cache (downloaded through pip on a miss)."""
    dest = pypi_cache_dir(cache) / "sdists" / f"{_norm(name)}-{version}"
    found = [p for p in dest.glob("*") if p.name.endswith(_ARCHIVES)] if dest.is_dir() else []
    if found:
        return found[0]
    tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=_mkdir(dest.parent)))
    try:
        base = [
            "download",
            "--no-binary",
            ":all:",
            "--no-deps",
            "--quiet",
            "-d",
            str(tmp),
            f"{name}=={version}",
        ]
        # Without build isolation pip prepares the metadata with the installed setuptools (~1 s); a
        # package with another build backend needs the isolated build (pip installs its backend).
        # (a missing backend, or setuptools-scm absent giving version 0.0.0, fails it: then isolated).
        proc = _pip([*base, "--no-build-isolation"])
        if proc.returncode != 0:
            proc = _pip(base)
        if proc.returncode != 0:
            offered = _offered(proc.stdout + proc.stderr)
            if offered is not None:
                raise RepoError(
                    f"pypi:{name}=={version}: no such release; {_describe_offer(name, offered, version)}"
                )
            raise RepoError(f"pypi:{name}=={version}: pip download failed: {_pip_error(proc)}")
        files = [p for p in tmp.iterdir() if p.name.endswith(_ARCHIVES)]
        if not files:
            raise RepoError(f"pypi:{name}=={version}: pip saved no source archive ({sorted(tmp.iterdir())})")
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / files[0].name
        os.replace(files[0], target)
        return target
    finally:
        for p in tmp.glob("*"):
            p.unlink(missing_ok=True)
        tmp.rmdir()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------------------------------- archive


def _clean_path(name: str) -> str | None:
    """The path inside the project (top folder stripped), or None to skip the entry."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if len(parts) < 2 or parts[0] in ("/", ".."):
        return None
    rest = parts[1:]
    if any(p in ("..", ".", "") for p in rest) or rest[0] == ".git" or ".git" in rest:
        return None
    if any(p.endswith(".egg-info") for p in rest[:-1]):
        return None
    return "/".join(rest)


def archive_files(archive: Path) -> dict[str, tuple[str, bytes]]:
    """``{path: (mode, content)}`` of an sdist archive, top folder stripped, git modes normalized."""
    out: dict[str, tuple[str, bytes]] = {}
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                path = _clean_path(info.filename)
                if path is None:
                    continue
                unix = info.external_attr >> 16
                mode = "120000" if (unix & 0o170000) == 0o120000 else "100755" if unix & 0o111 else "100644"
                out[path] = (mode, zf.read(info))
        return out
    with tarfile.open(archive) as tf:
        for member in tf:
            path = _clean_path(member.name)
            if path is None:
                continue
            if member.issym():
                out[path] = ("120000", member.linkname.encode())
            elif member.isfile() or member.islnk():
                fh = tf.extractfile(member)
                if fh is None:
                    continue
                out[path] = ("100755" if member.mode & 0o111 else "100644", fh.read())
    return out


# ------------------------------------------------------------------------------------------- repos


def _index_path(name: str, version: str, cache: Path | None) -> Path:
    return _store(cache) / "index" / f"{_norm(name)}=={version}.json"


def sdist_repo(name: str, version: str, cache: Path | None = None) -> tuple[Path, str]:
    """The package's cached git repository and the commit of release NAME==VERSION (built on a miss)."""
    index = _index_path(name, version, cache)
    repo = package_repo_path(name, cache)
    found = _cached_commit(index, repo, version)
    if found:
        return repo, found
    with _locked(repo):
        found = _cached_commit(index, repo, version)  # another process may have built it meanwhile
        if found:
            return repo, found
        archive = download_sdist(name, version, cache)
        files = archive_files(archive)
        if not files:
            raise RepoError(f"pypi:{name}=={version}: the source archive {archive.name} holds no files")
        _init_repo(repo)
        ops = [_modify(p, mode, content) for p, (mode, content) in sorted(files.items())]
        commit = _fast_import(
            repo, f"refs/releases/{version}", None, f"{name} {version} (source distribution)", ops
        )
        entry = {
            "name": name,
            "version": version,
            "commit": commit,
            "sdist": archive.name,
            "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
            "files": len(files),
        }
        _mkdir(index.parent)
        tmp = index.with_name(index.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(entry, indent=1))
        os.replace(tmp, index)
    return repo, commit


def _cached_commit(index: Path, repo: Path, version: str) -> str | None:
    if not index.exists() or not _has_release_ref(repo, version):
        return None
    try:
        return json.loads(index.read_text())["commit"]
    except (ValueError, KeyError):
        return None


def _has_release_ref(repo: Path, version: str) -> bool:
    """The release's ref is in the repository (a cheap check: a file, or a line of packed-refs)."""
    if (repo / "refs" / "releases" / version).exists():
        return True
    packed = repo / "packed-refs"
    return packed.exists() and f" refs/releases/{version}\n" in packed.read_text()


def child_commit(repo_path: Path, parent: str, changes: dict[str, str | None], message: str) -> str:
    """A deterministic commit on top of `parent` with `changes` applied (text per path; None deletes).

    The same inputs give the same hash; a second call finds the first one's commit without new work.
    """
    repo_path = Path(repo_path)
    key = hashlib.sha256(
        json.dumps([parent, sorted(changes.items(), key=lambda kv: kv[0]), message]).encode()
    ).hexdigest()
    memo = repo_path / "srl-children" / key
    if memo.exists():
        commit = memo.read_text().strip()
        if _has_object(repo_path, commit):
            return commit
    ops = []
    for path in sorted(changes):
        text = changes[path]
        if text is None:
            ops.append(f"D {_quote(path)}\n".encode())
            continue
        mode = _mode_at(repo_path, parent, path) or "100644"
        ops.append(_modify(path, mode, text.encode()))
    with _locked(repo_path / "srl-children"):
        commit = _fast_import(repo_path, f"refs/children/{key[:16]}", parent, message, ops)
        _mkdir(memo.parent)
        memo.write_text(commit + "\n")
    return commit


def _has_object(repo: Path, commit: str) -> bool:
    try:
        _git(repo, "cat-file", "-e", f"{commit}^{{commit}}")
        return True
    except RepoError:
        return False


def _mode_at(repo: Path, commit: str, path: str) -> str | None:
    out = _git(repo, "ls-tree", commit, "--", path).strip()
    return out.split()[0] if out else None


def diff(repo_path: Path, a: str, b: str, files: list[str] | None = None) -> str:
    """``git diff a b`` (optionally limited to `files`), text ending in a newline, or ''."""
    args = ["diff", "--no-color", "--no-ext-diff", "--no-renames", "--full-index", a, b]
    if files is not None:
        if not files:
            return ""
        args += ["--", *files]
    text = _git(Path(repo_path), *args)
    return text if not text or text.endswith("\n") else text + "\n"


def changed_files(repo_path: Path, a: str, b: str) -> list[str]:
    """Paths that differ between commits `a` and `b`."""
    out = _git(Path(repo_path), "diff", "--name-only", "--no-renames", a, b)
    return [ln for ln in out.splitlines() if ln]


def read_file(repo_path: Path, commit: str, path: str) -> str | None:
    try:
        return _git(Path(repo_path), "show", f"{commit}:{path}")
    except RepoError:
        return None


def list_files(repo_path: Path, commit: str) -> list[str]:
    return [ln for ln in _git(Path(repo_path), "ls-tree", "-r", "--name-only", commit).splitlines() if ln]
