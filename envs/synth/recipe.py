"""Synth recipes: what a task file stores (never the patch) and how it becomes the mutated commit and the
gold patch (`materialize_synth`)."""

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from envs.synth.mutations import MutationSite, SynthError, apply_mutation, find_site

#: Keys of a ``synth`` recipe (the task file stores these, never the patch).
RECIPE_KEYS = ("package", "version", "file", "function", "mutation", "index", "seed")


# ------------------------------------------------------------------------------------------ recipes


def make_recipe(package: str, version: str, site: MutationSite, seed: int) -> dict[str, Any]:
    return {
        "kind": "synth",
        "package": package,
        "version": version,
        "file": site.path,
        "function": site.function,
        "mutation": site.kind,
        "index": site.index,
        "seed": seed,
    }


def recipe_id(recipe: dict[str, Any]) -> str:
    """A task id that names the release but not the mutated file or function."""
    key = json.dumps({k: recipe.get(k) for k in RECIPE_KEYS if k != "seed"}, sort_keys=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{recipe['package']}-{recipe['version']}")
    return f"{name}-synth-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _check_recipe(recipe: dict[str, Any]) -> None:
    missing = [k for k in RECIPE_KEYS if k not in recipe]
    if missing:
        raise SynthError(
            f"synth recipe: missing field(s) {', '.join(missing)} (expected {', '.join(RECIPE_KEYS)})"
        )
    if not isinstance(recipe["index"], int) or recipe["index"] < 0:
        raise SynthError(f"synth recipe field 'index': expected an integer >= 0, got {recipe['index']!r}")


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C", **(env or {})}
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=full_env)
    if proc.returncode != 0:
        raise SynthError(f"git {' '.join(args)} in {repo} failed: {proc.stderr.strip()}")
    return proc.stdout


def file_at(repo: Path, commit: str, path: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, text=False
    )
    if proc.returncode != 0:
        raise SynthError(f"synth recipe field 'file': {path} is not in the release (commit {commit[:12]})")
    return proc.stdout.decode("utf-8")


def diff_commits(repo: Path, old: str, new: str, path: str) -> str:
    """The unified diff of `path` from commit `old` to commit `new` (what ``git apply`` reads)."""
    return _git(repo, "diff", "--no-color", "--no-ext-diff", "--full-index", old, new, "--", path)


def mutated_commit(
    repo: Path, release_commit: str, path: str, mutated_text: str, package: str, version: str
) -> str:
    """The deterministic commit of the mutated tree, with no parent.

    The tree is made by `envs.pypi.child_commit` on top of the release; the task's base commit is a
    root commit holding that same tree (fixed author, date and the release commit's message), so the
    repository an agent gets has one commit, exactly like a release task: with the release as its
    parent, ``git diff HEAD~1`` would print the gold patch.
    """
    from envs.pypi import AUTHOR, EMAIL, EPOCH, child_commit

    child = child_commit(repo, release_commit, {path: mutated_text}, f"{package} {version} (mutated)")
    tree = _git(repo, "rev-parse", f"{child}^{{tree}}").strip()
    message = _git(repo, "log", "-1", "--format=%B", release_commit).strip() + "\n"
    stamp = f"{EPOCH} +0000"
    env = {
        "GIT_AUTHOR_NAME": AUTHOR,
        "GIT_AUTHOR_EMAIL": EMAIL,
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_NAME": AUTHOR,
        "GIT_COMMITTER_EMAIL": EMAIL,
        "GIT_COMMITTER_DATE": stamp,
    }
    root = _git(repo, "commit-tree", tree, "-m", message, env=env).strip()
    _git(repo, "update-ref", f"refs/synth/{root}", root)  # keep it from gc
    return root


def materialize_synth(recipe: dict[str, Any]) -> dict[str, Any]:
    """Repo source, base commit (the mutated tree) and gold patch (mutated -> original) of a recipe."""
    from envs.pypi import sdist_repo

    _check_recipe(recipe)
    package, version = str(recipe["package"]), str(recipe["version"])
    repo, release = sdist_repo(package, version)
    original = file_at(Path(repo), release, recipe["file"])
    site = find_site(original, recipe["file"], recipe["function"], recipe["mutation"], recipe["index"])
    mutated = apply_mutation(original, site)
    base = mutated_commit(Path(repo), release, recipe["file"], mutated, package, version)
    return {
        "repo_source": f"pypi:{package}=={version}",
        "base_commit": base,
        "patch": diff_commits(Path(repo), base, release, recipe["file"]),
        "test_patch": "",
    }
