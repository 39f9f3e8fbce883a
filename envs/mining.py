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
