"""Task recipes: a task file that says how its repo and patches are derived instead of storing them.

A task built from the package index stores no third-party code: its ``recipe`` names the releases (and,
for synthesized tasks, the mutation), and loading the file *materializes* it into ``repo_source``,
``base_commit``, ``patch`` and ``test_patch`` from the release repositories of `envs.pypi`. Kinds:

- ``release`` ``{kind, package, from, to, source_files, test_files}``: the repo is release `from`
  (``pypi:package==from``), the gold patch the diff of `source_files` between the two releases'
  trees, the test patch the diff of `test_files` (how ``srl task mine --pypi`` writes its tasks);
- ``synth`` ``{kind, package, version, file, function, mutation, index, seed}``: dispatched to
  `envs.synth.materialize_synth` (a mutated tree committed on top of the release; gold = the inverse).

Materialized results are cached by the recipe's content beside the release repositories, so loading a
pack again costs a file read per task; a cold cache needs the package index once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from envs.pypi import FORMAT, diff, package_repo_path, pypi_cache_dir, sdist_repo
from envs.repos import RepoError
from trajectories.errors import SrlSweError

KINDS = ("release", "synth")
_HEX = re.compile(r"[0-9a-fA-F]{7,40}")
_REQUIRED = {
    "release": {"package": str, "from": str, "to": str, "source_files": list, "test_files": list},
    "synth": {"package": str, "version": str, "file": str, "function": str, "mutation": str},
}
#: Bump when the materialized output of the same recipe changes meaning (invalidates the cache).
MATERIALIZE_VERSION = 1


class RecipeError(SrlSweError, ValueError):
    """A recipe is malformed or cannot be materialized; the message says which part and why, `field`
    which task field is at fault (``recipe`` unless the file contradicts it elsewhere)."""

    def __init__(self, message: str, field: str = "recipe") -> None:
        super().__init__(message)
        self.field = field


def check_recipe(recipe: Any) -> dict[str, Any]:
    """`recipe` as a dict with a known kind and its required fields, or a `RecipeError`."""
    if not isinstance(recipe, dict):
        raise RecipeError(
            f"expected a mapping with a 'kind' ({' | '.join(KINDS)}), got {type(recipe).__name__}"
        )
    kind = recipe.get("kind")
    if kind not in KINDS:
        raise RecipeError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    for key, typ in _REQUIRED[kind].items():
        value = recipe.get(key)
        if not isinstance(value, typ) or not value:
            raise RecipeError(
                f"{kind} recipe field {key!r}: expected a non-empty {typ.__name__}, got {value!r}"
            )
        if typ is list and not all(isinstance(v, str) and v for v in value):
            raise RecipeError(f"{kind} recipe field {key!r}: expected a list of file paths, got {value!r}")
    return recipe


def release_recipe(
    package: str, from_version: str, to_version: str, source_files: list[str], test_files: list[str]
) -> dict[str, Any]:
    return {
        "kind": "release",
        "package": package,
        "from": from_version,
        "to": to_version,
        "source_files": list(source_files),
        "test_files": list(test_files),
    }


def _memo_path(recipe: dict[str, Any], cache: Path | None) -> Path:
    text = json.dumps([MATERIALIZE_VERSION, recipe], sort_keys=True, separators=(",", ":"))
    name = f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.json"
    return pypi_cache_dir(cache) / f"v{FORMAT}" / "recipes" / name


def materialize(recipe: Any, cache: Path | None = None) -> dict[str, str]:
    """``{repo_source, base_commit, patch, test_patch}`` of a recipe (cached by its content)."""
    recipe = check_recipe(recipe)
    memo = _memo_path(recipe, cache)
    if memo.exists() and (package_repo_path(recipe["package"], cache) / "HEAD").exists():
        try:
            return json.loads(memo.read_text())
        except ValueError:
            pass
    try:
        out = _release(recipe, cache) if recipe["kind"] == "release" else _synth(recipe)
    except RepoError as exc:
        raise RecipeError(f"cannot materialize the {recipe['kind']} recipe: {exc}") from exc
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(memo.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, memo)
    return out


def _release(recipe: dict[str, Any], cache: Path | None) -> dict[str, str]:
    package = recipe["package"]
    repo, base = sdist_repo(package, recipe["from"], cache)
    _, target = sdist_repo(package, recipe["to"], cache)
    patch = diff(repo, base, target, recipe["source_files"])
    test_patch = diff(repo, base, target, recipe["test_files"])
    if not patch:
        raise RecipeError(
            f"source_files {recipe['source_files']} do not change between {package} {recipe['from']} "
            f"and {recipe['to']}"
        )
    if not test_patch:
        raise RecipeError(
            f"test_files {recipe['test_files']} do not change between {package} {recipe['from']} "
            f"and {recipe['to']}"
        )
    return {
        "repo_source": f"pypi:{package}=={recipe['from']}",
        "base_commit": base,
        "patch": patch,
        "test_patch": test_patch,
    }


def _synth(recipe: dict[str, Any]) -> dict[str, str]:
    try:
        from envs.synth import materialize_synth  # only synthesized tasks need the mutation code
    except ImportError as exc:
        raise RecipeError(
            f"the synth recipe needs envs.synth.materialize_synth, which this installation lacks ({exc})"
        ) from exc
    out = materialize_synth(recipe)
    base = out.get("base_commit") if isinstance(out, dict) else None
    if not base or not out.get("patch"):
        raise RecipeError(f"envs.synth.materialize_synth returned no base_commit/patch for {recipe}")
    version = recipe["version"]
    return {
        "repo_source": f"pypi:{recipe['package']}=={version}",
        "base_commit": base,
        "patch": out["patch"],
        "test_patch": out.get("test_patch", "") or "",
    }


def apply_recipe(record: dict[str, Any], cache: Path | None = None) -> dict[str, Any]:
    """Task-file fields with the recipe's output filled in; `RecipeError` when the file contradicts it
    (stored patches, a different base_commit) or the recipe cannot be materialized."""
    out = materialize(record.get("recipe"), cache)
    # A dumped TaskSpec carries the materialized patches: the same text is fine, other text is not.
    stored = [k for k in ("patch", "test_patch") if str(record.get(k) or "").strip() and record[k] != out[k]]
    if stored:
        raise RecipeError(
            f"a task with a recipe stores no {' or '.join(stored)} (they are derived from it; this one differs)"
        )
    base = record.get("base_commit")
    # A value that is no commit hash at all is left to TaskSpec's own check (its error names the field).
    if isinstance(base, str) and _HEX.fullmatch(base) and not out["base_commit"].startswith(base.lower()):
        raise RecipeError(
            f"{base} in the file, but the recipe gives {out['base_commit']} (the registry's release "
            "differs from the one the task was made from, or the file was edited)",
            field="base_commit",
        )
    source = record.get("repo_source")
    if source is not None and source != out["repo_source"]:
        raise RecipeError(
            f"{source!r} in the file, but the recipe gives {out['repo_source']!r}", "repo_source"
        )
    if isinstance(base, str) and not _HEX.fullmatch(base):
        out = {k: v for k, v in out.items() if k != "base_commit"}
    return {**record, **out}


def row_over_release(
    row: dict[str, Any], package: str, version: str, cache: Path | None = None
) -> dict[str, Any]:
    """A SWE-bench-form row (or task dict) moved onto release `package==version` from the package index.

    `repo_source` and `base_commit` become the release's; file diffs of `patch` / `test_patch` that do not
    apply to the release's tree are dropped when they are not Python (a changelog or CI file that the
    source distribution ships in another state, or not at all) and are an error when they are (the
    release is not the code the row was made for). The dropped paths go to ``metadata.dropped_files``.
    """
    from unidiff import PatchSet

    repo, commit = sdist_repo(package, version, cache)
    out = dict(row)
    dropped: list[str] = []
    for key in ("patch", "test_patch"):
        text = row.get(key) or ""
        if not text.strip():
            continue
        kept = []
        for pf in PatchSet(text):
            piece = str(pf)
            if _applies(repo, commit, piece):
                kept.append(piece)
            elif pf.path.endswith(".py"):
                raise RecipeError(
                    f"{key}: the diff of {pf.path} does not apply to {package} {version} from the index "
                    "(pick the release the row's base commit belongs to)"
                )
            else:
                dropped.append(pf.path)
        out[key] = "".join(kept)
    out["repo_source"] = f"pypi:{package}=={version}"
    out["base_commit"] = commit
    if dropped:
        meta = dict(out.get("metadata") or {})
        meta["dropped_files"] = dropped
        out["metadata"] = meta
    return out


def _applies(repo: Path, commit: str, patch: str) -> bool:
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git = ["git", f"--git-dir={repo}"]
        subprocess.run([*git, "read-tree", commit], env=env, check=True, capture_output=True)
        proc = subprocess.run(
            [*git, "apply", "--cached", "--check", "-"], input=patch.encode(), env=env, capture_output=True
        )
        return proc.returncode == 0
