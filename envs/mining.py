"""Candidate tasks from a repo's git history (GitPython + unidiff).

A commit is a candidate when it has one parent and changes both source files and test files (Python
on both sides). Its candidate `TaskSpec` starts at the parent: the gold patch is the commit's diff of
the non-test files, the test patch its diff of the test files, the problem statement the commit
message (flagged ``problem_statement_source: commit_message``). FAIL_TO_PASS / PASS_TO_PASS are left
empty: running the tests before and after the gold patch (``harness.validate.run_task(discover=True)``)
fills them, and only candidates with at least one failing-then-passing test become tasks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import git
from unidiff import PatchSet

from envs.repos import open_repo
from envs.spec import EnvSpec, TaskSpec, is_test_path


@dataclass(frozen=True)
class Candidate:
    commit: str
    parent: str
    message: str
    source_files: tuple[str, ...]
    test_files: tuple[str, ...]
    patch: str
    test_patch: str


def repo_name_from_location(location: str) -> str:
    """``owner/name`` from ``.../owner__name.bundle`` or a URL; else the directory name."""
    stem = Path(location.rstrip("/")).name.removesuffix(".git").removesuffix(".bundle")
    if "://" in location or location.startswith("git@"):
        parts = re.split(r"[/:]", location.rstrip("/").removesuffix(".git"))
        if len(parts) >= 2:
            return f"{parts[-2]}/{parts[-1]}"
    return stem.replace("__", "/", 1) if "__" in stem else stem


def _diff(repo: git.Repo, parent: str, commit: str, files: list[str]) -> str:
    text = repo.git.diff(parent, commit, "--no-color", "--no-ext-diff", "--no-renames", "--", *files)
    return text + "\n" if text and not text.endswith("\n") else text


def iter_candidates(
    location: str, rev: str = "HEAD", since: str | None = None, max_commits: int | None = None
) -> Iterator[Candidate]:
    """Commits of `rev` (newest first, after `since` when given) that change source and tests."""
    repo = open_repo(location)
    spec = f"{since}..{rev}" if since else rev
    seen = 0
    for commit in repo.iter_commits(spec, no_merges=True):
        if max_commits is not None and seen >= max_commits:
            return
        seen += 1
        if len(commit.parents) != 1:
            continue
        parent = commit.parents[0].hexsha
        raw = repo.git.diff(parent, commit.hexsha, "--no-color", "--no-ext-diff", "--no-renames")
        try:
            patchset = PatchSet(raw)
        except Exception:  # unparsable diff: not a candidate
            continue
        if any(pf.is_binary_file for pf in patchset):
            continue
        files = [pf.path for pf in patchset]
        tests = [f for f in files if is_test_path(f)]
        sources = [f for f in files if not is_test_path(f)]
        if not any(f.endswith(".py") for f in tests) or not any(f.endswith(".py") for f in sources):
            continue
        yield Candidate(
            commit=commit.hexsha,
            parent=parent,
            message=str(commit.message).strip(),
            source_files=tuple(sources),
            test_files=tuple(tests),
            patch=_diff(repo, parent, commit.hexsha, sources),
            test_patch=_diff(repo, parent, commit.hexsha, tests),
        )


def candidate_spec(
    cand: Candidate,
    repo: str,
    repo_source: str | None,
    env: EnvSpec | None = None,
    instance_prefix: str | None = None,
) -> TaskSpec:
    """A TaskSpec for `cand` with empty FAIL_TO_PASS / PASS_TO_PASS (to be discovered)."""
    prefix = instance_prefix or repo.replace("/", "__")
    return TaskSpec(
        instance_id=f"{prefix}-{cand.commit[:8]}",
        repo=repo,
        repo_source=repo_source,
        base_commit=cand.parent,
        problem_statement=cand.message,
        problem_statement_source="commit_message",
        env=env or EnvSpec(),
        test_patch=cand.test_patch,
        patch=cand.patch,
        metadata={"fix_commit": cand.commit, "mined": True},
    )


# --------------------------------------------------------------------------------------- releases

#: Files at the root of a source distribution that are tooling, not the package's source.
_ROOT_TOOLING = {
    "setup.py",
    "noxfile.py",
    "tasks.py",
    "versioneer.py",
    "fabfile.py",
    "conftest.py",
    "dodo.py",
}
_CHANGELOG_RE = re.compile(r"^(changes|changelog|news|history|release[-_ ]?notes)(\.[a-z]+)?$", re.IGNORECASE)


def is_release_source(path: str) -> bool:
    """A package source file for release mining: Python outside tests, docs, build tooling and metadata."""
    parts = path.split("/")
    if not path.endswith(".py") or is_test_path(path):
        return False
    if parts[0] in ("docs", "doc", "examples", "benchmarks", "bench", "scripts", "tools", "ci"):
        return False
    if len(parts) == 1 and path in _ROOT_TOOLING:
        return False
    return not any(p.endswith(".egg-info") or p == "PKG-INFO" for p in parts)


def is_release_test(path: str) -> bool:
    return path.endswith(".py") and is_test_path(path)


@dataclass(frozen=True)
class ReleaseCandidate:
    """Two consecutive releases whose diff changes package source and tests."""

    package: str
    from_version: str
    to_version: str
    base_commit: str
    source_files: tuple[str, ...]
    test_files: tuple[str, ...]
    patch: str
    test_patch: str
    changelog: str | None


def select_versions(versions: list[str], spec: str, pre: bool = False) -> list[str]:
    """The versions in the inclusive range ``A..B`` (either side may be empty), oldest first."""
    from packaging.version import InvalidVersion, Version

    lo_text, sep, hi_text = spec.partition("..")
    if not sep:
        raise ValueError(f"--versions {spec!r}: expected A..B (e.g. 5.0.0..5.3.2; either side may be empty)")
    try:
        lo = Version(lo_text) if lo_text.strip() else None
        hi = Version(hi_text) if hi_text.strip() else None
    except InvalidVersion as exc:
        raise ValueError(f"--versions {spec!r}: {exc}") from None
    out = []
    for v in versions:
        ver = Version(v)
        if (ver.is_prerelease or ver.is_devrelease) and not pre:
            continue
        if (lo is None or ver >= lo) and (hi is None or ver <= hi):
            out.append(v)
    return out


def changelog_entry(repo_path: Path, commit: str, version: str, max_chars: int = 4000) -> str | None:
    """The text a changelog (CHANGES/CHANGELOG/NEWS/HISTORY at the root) gives for `version`, if any."""
    from envs import pypi

    names = [p for p in pypi.list_files(repo_path, commit) if "/" not in p and _CHANGELOG_RE.match(p)]
    for name in names:
        text = pypi.read_file(repo_path, commit, name)
        if text:
            entry = _section_for(text, version)
            if entry:
                return entry[:max_chars].rstrip()
    return None


_VERSION_IN_LINE = re.compile(r"(?<![\w.])v?(\d+(?:\.\d+)+(?:[a-z]+\d*)?)(?![\w.]*\d)")
_UNDERLINE = re.compile(r"^\s*([=\-~^*#+`'\".])\1{2,}\s*$")


def _is_heading(lines: list[str], i: int) -> bool:
    line = lines[i]
    if not line.strip() or line.startswith((" ", "\t", "-", "*", "+")):
        return False
    if line.lstrip().startswith("#"):
        return True
    nxt = lines[i + 1] if i + 1 < len(lines) else ""
    return bool(_UNDERLINE.match(nxt)) or len(line) < 80


def _section_for(text: str, version: str) -> str | None:
    lines = text.splitlines()
    start = None
    for i, line in enumerate(lines):
        found = [m.group(1) for m in _VERSION_IN_LINE.finditer(line)]
        if version in found and _is_heading(lines, i):
            start = i
            break
    if start is None:
        return None
    body: list[str] = []
    for j in range(start + 1, len(lines)):
        line = lines[j]
        if _UNDERLINE.match(line) and j == start + 1:
            continue
        found = [m.group(1) for m in _VERSION_IN_LINE.finditer(line)]
        if found and version not in found and _is_heading(lines, j):
            break
        body.append(line)
    while body and (not body[-1].strip() or _UNDERLINE.match(body[-1])):
        body.pop()
    entry = "\n".join(body).strip("\n")
    return entry if entry.strip() else None


def iter_release_candidates(
    package: str, versions: list[str], cache: Path | None = None
) -> Iterator[ReleaseCandidate]:
    """Consecutive pairs of `versions` (oldest first) whose diff changes source files and test files."""
    from envs import pypi

    for a, b in zip(versions, versions[1:], strict=False):
        repo, base = pypi.sdist_repo(package, a, cache)
        _, target = pypi.sdist_repo(package, b, cache)
        changed = pypi.changed_files(repo, base, target)
        sources = [f for f in changed if is_release_source(f)]
        tests = [f for f in changed if is_release_test(f)]
        if not sources or not tests:
            continue
        yield ReleaseCandidate(
            package=package,
            from_version=a,
            to_version=b,
            base_commit=base,
            source_files=tuple(sources),
            test_files=tuple(tests),
            patch=pypi.diff(repo, base, target, sources),
            test_patch=pypi.diff(repo, base, target, tests),
            changelog=changelog_entry(repo, target, b),
        )


def release_statement(
    package: str, from_version: str, to_version: str, changelog: str | None, fail_to_pass: list[str] = ()
) -> str:
    """The problem statement of a release-mined task: the release's changelog entry; without one, a short
    neutral text naming the release and (once validated) the tests that check the changed behaviour."""
    if changelog:
        return changelog
    text = (
        f"Bring {package} from release {from_version} to the behaviour of release {to_version}: "
        "the tests that exercise the changed behaviour should pass."
    )
    if fail_to_pass:
        names = ", ".join(f"`{t}`" for t in fail_to_pass[:8])
        more = f" and {len(fail_to_pass) - 8} more" if len(fail_to_pass) > 8 else ""
        text += f" They fail now: {names}{more}."
    return text


def release_candidate_spec(
    cand: ReleaseCandidate, env: EnvSpec | None = None, instance_prefix: str | None = None
) -> TaskSpec:
    """A TaskSpec with the release recipe (patches filled in for validation; the file stores the recipe)."""
    from envs.recipes import release_recipe

    prefix = instance_prefix or re.sub(r"[^A-Za-z0-9_.\-]", "-", cand.package.lower())
    statement = release_statement(cand.package, cand.from_version, cand.to_version, cand.changelog)
    source = "changelog" if cand.changelog else "written"
    return TaskSpec(
        instance_id=f"{prefix}-{cand.to_version}",
        repo=cand.package,
        repo_source=f"pypi:{cand.package}=={cand.from_version}",
        base_commit=cand.base_commit,
        problem_statement=statement,
        problem_statement_source=source,
        env=env or EnvSpec(),
        test_patch=cand.test_patch,
        patch=cand.patch,
        metadata={"mined": True, "release": f"{cand.from_version}..{cand.to_version}"},
        recipe=release_recipe(
            cand.package, cand.from_version, cand.to_version, list(cand.source_files), list(cand.test_files)
        ),
    )
