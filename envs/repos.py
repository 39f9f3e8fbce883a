"""Host-side git work with GitPython: open a task's repo (checkout, bundle, URL, or a release's source
distribution from the package index, ``pypi:NAME==VERSION``, see `envs.pypi`) and export it at its base
commit with nothing that comes later.

The export is a fresh repository holding exactly the ancestry of ``base_commit``: one branch
``main`` at the base commit, no tags, no remotes, no stashes, no reflog, packed with ``gc
--prune=now``. Commits after the base (the fix!) are not in it, so an agent cannot find them with
``git log --all`` or ``git cat-file``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import git

from trajectories.errors import SrlSweError


class RepoError(SrlSweError, RuntimeError):
    """A repo or commit cannot be found or read; the message names which and where."""


def repo_cache_dir() -> Path:
    base = os.environ.get("SRL_SWE_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "srl-swe") / "repos"


def _is_url(location: str) -> bool:
    return "://" in location or location.startswith("git@")


def _cache_path(location: str, key_text: str, cache: Path) -> Path:
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    stem = Path(location.rstrip("/")).name.removesuffix(".git").removesuffix(".bundle") or "repo"
    return cache / f"{stem}-{key}.git"


def _has_commit(repo: git.Repo, commit: str) -> bool:
    try:
        repo.git.cat_file("-e", f"{commit}^{{commit}}")
        return True
    except git.GitCommandError:
        return False


def open_repo(location: str, commit: str | None = None, cache: Path | None = None) -> git.Repo:
    """A GitPython repo for `location`: a checkout or bare repo as is; a bundle or URL via a bare clone
    in the cache (fetched again when `commit` is missing); ``pypi:NAME==VERSION`` via `envs.pypi.sdist_repo`
    (its own cache: the package's repository holds every cached release and commits made on top)."""
    if location.startswith("pypi:"):
        from envs.pypi import parse_pypi_source, sdist_repo  # same layer; pypi imports RepoError from here

        name, version = parse_pypi_source(location) or ("", "")
        path, _ = sdist_repo(name, version)
        return git.Repo(path)
    cache = cache or repo_cache_dir()
    if not _is_url(location):
        path = Path(location).expanduser()
        if not path.exists():
            raise RepoError(f"repo {location}: no such file or directory")
        if path.is_dir():
            try:
                return git.Repo(path)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
                raise RepoError(f"repo {location}: not a git repository") from exc
        if path.suffix != ".bundle":
            raise RepoError(f"repo {location}: expected a directory, a .bundle file or a URL")
        stat = path.stat()
        location = str(path.resolve())
        location_key = f"{location}:{stat.st_size}:{stat.st_mtime_ns}"
    else:
        location_key = location
    dest = _cache_path(location, location_key, cache)
    if dest.exists():
        repo = git.Repo(dest)
        if commit is None or not _is_url(location) or _has_commit(repo, commit):
            return repo  # a bundle's cache key covers its content; only URLs can gain commits
        try:
            repo.git.fetch("--tags", "--force", str(location), "+refs/heads/*:refs/heads/*")
        except git.GitCommandError as exc:
            raise RepoError(f"repo {location}: fetch failed: {exc.stderr.strip()}") from exc
        return repo
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        git.Repo.clone_from(str(location), tmp, bare=True)
    except git.GitCommandError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RepoError(f"repo {location}: clone failed: {exc.stderr.strip()}") from exc
    try:
        tmp.rename(dest)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return git.Repo(dest)


def resolve_commit(repo: git.Repo, commit: str, location: str) -> str:
    """The full hash of `commit` in `repo`, or a `RepoError` naming both."""
    try:
        return repo.git.rev_parse("--verify", "--quiet", f"{commit}^{{commit}}").strip()
    except git.GitCommandError:
        raise RepoError(f"commit {commit} not found in repo {location}") from None


def export_at_commit(location: str, commit: str, dest: Path, cache: Path | None = None) -> str:
    """Write a fresh repository at `dest` whose only history is `commit` and its ancestors.

    Returns the full hash. `dest` must not exist or be empty.
    """
    src = open_repo(location, commit, cache)
    full = resolve_commit(src, commit, location)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise RepoError(f"export target {dest} is not empty")
    out = git.Repo.init(dest, initial_branch="main")
    g = out.git
    g.fetch(
        "--no-tags",
        "--quiet",
        "--update-head-ok",
        str(Path(src.git_dir).resolve()),
        f"{full}:refs/heads/main",
    )
    g.reset("--hard", "--quiet", "main")
    if location.startswith("pypi:"):
        # A source distribution ships no .gitignore: what installing it writes stays out of `git status`.
        exclude = Path(out.git_dir) / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as fh:
            fh.write("*.egg-info/\n.eggs/\nbuild/\ndist/\n__pycache__/\n*.py[cod]\n.pytest_cache/\n")
    for leftover in ("FETCH_HEAD", "ORIG_HEAD"):
        (Path(out.git_dir) / leftover).unlink(missing_ok=True)
    g.reflog("expire", "--expire=now", "--all")
    g.gc("--prune=now", "--quiet")
    shutil.rmtree(Path(out.git_dir) / "logs", ignore_errors=True)
    hooks = Path(out.git_dir) / "hooks"
    for sample in hooks.glob("*.sample"):
        sample.unlink()
    return full


def file_at(repo: git.Repo, commit: str, path: str) -> str | None:
    """Text of `path` at `commit`, or None when it does not exist there."""
    try:
        return repo.git.show(f"{commit}:{path}")
    except git.GitCommandError:
        return None
