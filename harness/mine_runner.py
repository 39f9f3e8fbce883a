"""Mine validated tasks: candidates from `envs.mining`, checked in sandboxes, written as a task pack.

`mine_history` walks a repo's git history (`envs.mining.iter_candidates`), `mine_releases` the
consecutive releases of a package on the index (`envs.mining.iter_release_candidates`). Each candidate
is run by `harness.validate.run_task(discover=True)`: the tests that fail before the gold patch and pass
after it become FAIL_TO_PASS, those that pass both times PASS_TO_PASS. A candidate without such a test
(or with problems) is skipped and its image removed; a kept one is written to ``out/<id>.yaml`` at once,
so an interrupted run keeps what it found. Candidates already in ``out`` are not mined again.

`srl task mine` is a thin command over these two functions; they are callable from Python and report
progress through a callback (`MineEvent`) instead of printing.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Literal

import docker

from envs.mining import (
    candidate_spec,
    iter_candidates,
    iter_release_candidates,
    release_candidate_spec,
    release_statement,
    repo_name_from_location,
    select_versions,
)
from envs.repos import RepoError
from envs.sources import TaskSourceError, load_tasks, write_task
from envs.spec import DEFAULT_INSTALL, DEFAULT_PIP_PACKAGES, EnvSpec, TaskSpec
from trajectories.errors import SrlSweError

BUILD_LOGS = Path("runs/build_logs")


class MiningError(SrlSweError, ValueError):
    """The mining request cannot be carried out (a bad version range, too few releases, REPO and --pypi)."""


@dataclass(frozen=True)
class MineEvent:
    """One progress report: ``start`` (what will be mined), ``status`` (a candidate's current stage),
    ``kept`` (a task was written) or ``skipped`` (a candidate was rejected, `message` says why)."""

    kind: Literal["start", "status", "kept", "skipped"]
    message: str
    instance_id: str = ""
    title: str = ""  # the commit's first line, or "A -> B" for releases
    done: int = 0  # candidates (history) or release pairs (releases) looked at so far
    total: int | None = None  # release pairs in the range (None for a history walk)


@dataclass
class MinedTask:
    instance_id: str
    title: str
    path: Path
    fail_to_pass: list[str]
    pass_to_pass: list[str]


@dataclass
class MiningReport:
    out: Path
    kept: list[MinedTask] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # instance id -> reason
    tried: int = 0
    versions: list[str] = field(default_factory=list)  # the releases mined (mine_releases only)


Progress = Callable[[MineEvent], None]


def _env(pip: list[str] | None, install: list[str] | None) -> EnvSpec:
    return EnvSpec(pip_packages=list(pip or DEFAULT_PIP_PACKAGES), install=list(install or DEFAULT_INSTALL))


def _existing(out: Path, key: Callable[[TaskSpec], str]) -> set[str]:
    """Keys of the tasks already written to `out` (an unreadable pack counts as empty)."""
    if not out.exists():
        return set()
    try:
        return {key(t) for t in load_tasks(str(out)).tasks}
    except TaskSourceError:
        return set()


def _client(client: docker.DockerClient | None) -> docker.DockerClient:
    from harness.docker_env import get_client

    return client if client is not None else get_client()


def _validated(
    report: MiningReport,
    spec: TaskSpec,
    *,
    event: MineEvent,
    runs: int,
    client: docker.DockerClient,
    progress: Progress,
    whole_module_failures: bool,
) -> bool:
    """Run one candidate (counted as tried); True with its FAIL_TO_PASS / PASS_TO_PASS filled in when it
    is a task, else False with the reason in ``report.skipped`` (and its image removed). `event` carries
    the title and position that this candidate's progress events report."""
    from harness.images import remove_image
    from harness.validate import run_task

    def say(message: str) -> None:
        progress(replace(event, kind="status", message=message))

    report.tried += 1
    res = run_task(
        spec, runs=runs, client=client, discover=True, log_dir=BUILD_LOGS / spec.instance_id, log=say
    )
    if whole_module_failures and res.fail_to_pass and not res.pass_to_pass and not res.problems:
        # Every test fails at base: the tests cannot run there (an import error), not a task.
        res.problems.append("no test passes at base (the test modules fail as a whole)")
    if not res.fail_to_pass or res.problems:  # run_task names the problem (discover: no F2P test)
        if res.image:  # a rejected candidate's image is of no further use
            remove_image(res.image)
        reason = "; ".join(res.problems)
        report.skipped[spec.instance_id] = reason
        progress(replace(event, kind="skipped", message=reason))
        return False
    spec.FAIL_TO_PASS = res.fail_to_pass
    spec.PASS_TO_PASS = res.pass_to_pass
    return True


def _keep(report: MiningReport, spec: TaskSpec, path: Path, event: MineEvent, progress: Progress) -> None:
    task = MinedTask(spec.instance_id, event.title, path, list(spec.FAIL_TO_PASS), list(spec.PASS_TO_PASS))
    report.kept.append(task)
    message = f"{len(task.fail_to_pass)} F2P, {len(task.pass_to_pass)} P2P -> {path}"
    progress(replace(event, kind="kept", message=message))


def mine_history(
    location: str,
    out: Path,
    *,
    name: str | None = None,
    rev: str = "HEAD",
    since: str | None = None,
    max_tasks: int = 10,
    max_commits: int = 500,
    pip: list[str] | None = None,
    install: list[str] | None = None,
    runs: int = 2,
    copy_repo: bool = True,
    client: docker.DockerClient | None = None,
    progress: Progress | None = None,
) -> MiningReport:
    """Tasks from the commits of a checkout, ``.bundle`` file or URL (newest first, at most `max_tasks`).

    With `copy_repo`, a ``.bundle`` is copied to ``out/repos/`` and the task files point there. Raises
    `RepoError` for an unreadable repo, `DockerUnavailable` without Docker.
    """
    progress = progress or (lambda event: None)
    repo_name = name or repo_name_from_location(location)
    env = _env(pip, install)
    if not ("://" in location or location.startswith("git@")):
        location = str(Path(location).resolve())
    written_source = location
    if copy_repo and location.endswith(".bundle"):
        target = out / "repos" / Path(location).name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(location, target)
        written_source = f"repos/{target.name}"
    existing = _existing(out, lambda t: t.metadata.get("fix_commit", ""))
    client = _client(client)
    report = MiningReport(out=out)
    validated = partial(_validated, runs=runs, client=client, progress=progress, whole_module_failures=False)
    for done, cand in enumerate(iter_candidates(location, rev=rev, since=since, max_commits=max_commits)):
        if len(report.kept) >= max_tasks:
            break
        if cand.commit in existing:
            continue
        spec = candidate_spec(cand, repo_name, location, env)
        title = cand.message.splitlines()[0][:60] if cand.message.strip() else cand.commit[:8]
        event = MineEvent("status", "validating", spec.instance_id, title, done)
        progress(event)
        if not validated(report, spec, event=event):
            continue
        path = write_task(spec, out / f"{spec.instance_id}.yaml", repo_source=written_source)
        _keep(report, spec, path, event, progress)
    return report


def release_range(package: str, versions: str, pre: bool = False) -> list[str]:
    """The releases of `package` with a source distribution in ``A..B`` (two or more, oldest first)."""
    from envs.pypi import release_versions

    try:
        selected = select_versions(release_versions(package), versions, pre=pre)
    except ValueError as exc:
        raise MiningError(str(exc)) from None
    if len(selected) < 2:
        raise MiningError(
            f"--versions {versions}: {package} has {len(selected)} release(s) with a source distribution in "
            f"that range ({', '.join(selected) or 'none'}); need two or more"
        )
    return selected


def mine_releases(
    package: str,
    out: Path,
    *,
    versions: str = "..",
    pre: bool = False,
    max_tasks: int = 10,
    pip: list[str] | None = None,
    install: list[str] | None = None,
    runs: int = 2,
    client: docker.DockerClient | None = None,
    progress: Progress | None = None,
) -> MiningReport:
    """Tasks from consecutive releases of `package` in ``A..B``; each file stores the release recipe.

    Raises `MiningError` for a bad range (before Docker is needed), `RepoError` when a release cannot be
    fetched or its recipe does not reproduce the mined patches, `DockerUnavailable` without Docker.
    """
    from envs.recipes import materialize

    progress = progress or (lambda event: None)
    selected = release_range(package, versions, pre)
    env = _env(pip, install)
    existing = _existing(out, lambda t: t.instance_id)
    client = _client(client)
    report = MiningReport(out=out, versions=selected)
    total = len(selected) - 1
    progress(
        MineEvent("start", f"{package}: {len(selected)} releases {selected[0]}..{selected[-1]}", total=total)
    )
    index = {v: i for i, v in enumerate(selected)}
    validated = partial(_validated, runs=runs, client=client, progress=progress, whole_module_failures=True)
    for cand in iter_release_candidates(package, selected):
        done = index[cand.from_version]
        if len(report.kept) >= max_tasks:
            break
        spec = release_candidate_spec(cand, env)
        title = f"{cand.from_version} -> {cand.to_version}"
        event = MineEvent("status", cand.to_version, spec.instance_id, title, done, total)
        progress(event)
        if spec.instance_id in existing:
            continue
        if not validated(report, spec, event=event):
            continue
        if not cand.changelog:  # name the validated tests in the neutral statement
            spec.problem_statement = release_statement(
                package, cand.from_version, cand.to_version, None, spec.FAIL_TO_PASS
            )
        derived = materialize(spec.recipe)  # what loading the file will give: the same patches
        if (derived["patch"], derived["test_patch"]) != (spec.patch, spec.test_patch):
            raise RepoError(f"{spec.instance_id}: the recipe does not reproduce the mined patches")
        path = write_task(spec, out / f"{spec.instance_id}.yaml")
        _keep(report, spec, path, event, progress)
    return report
