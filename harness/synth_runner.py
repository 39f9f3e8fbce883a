"""Synthesize tasks from a release: mutate one function at a time and keep what the test suite catches.

`synthesize` builds the release's instance image (``pypi:NAME==VERSION``, default environment unless told
otherwise), opens ONE long-lived sandbox from it, runs the test suite once on the original tree (the
baseline), then tries seeded-random mutation sites (`envs.synth`): the mutated file is written into the
sandbox, the test files that name the function run first (nothing breaks there: rejected at once), then
the whole suite; the mutation is kept when at least one baseline-passing test breaks and every other one
still passes, the same way in a second run (collection errors, a module that no longer imports, timeouts
and results that change between the two runs are rejections). The file is
restored before the next try. A kept mutation becomes a task file at once (an interrupted run keeps what
it finished): its recipe (package, version, file, function, mutation, index, seed), FAIL_TO_PASS = the
broken tests, PASS_TO_PASS = the other baseline-passing tests, and a problem statement written from the
failing tests' output.
"""

from __future__ import annotations

import random
import re
import shlex
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker

from envs.pypi import list_files, parse_pypi_source, read_file, sdist_repo
from envs.repos import RepoError
from envs.sources import load_tasks, write_task
from envs.spec import DEFAULT_INSTALL, DEFAULT_PIP_PACKAGES, TESTBED, EnvSpec, TaskSpec, is_test_path
from envs.synth import (
    MutationSite,
    SynthError,
    apply_mutation,
    enumerate_mutations,
    is_source_file,
    make_recipe,
    materialize_synth,
    problem_statement,
    recipe_id,
)
from harness.images import ensure_instance_image
from harness.log_parsers import FAILED, PASSED, XPASS, get_parser, split_summary_rest
from harness.sandbox import Sandbox, SandboxConfig
from trajectories.errors import SrlSweError

GOOD = {PASSED, XPASS}
_SUBFAILED_RE = re.compile(r"^SUBFAIL(?:ED)?\S* (?P<rest>\S.*)$", re.MULTILINE)
_TEST_FILE_RE = re.compile(r"(^|/)test_[^/]*\.py$|_test\.py$")

Progress = Callable[[str, "SynthReport"], None]


class SynthRunError(SrlSweError, RuntimeError):
    """The release cannot be used for synthesis (bad NAME==VERSION, no tests, no passing baseline)."""


@dataclass
class Attempt:
    site: str  # MutationSite.describe()
    kept: bool
    reason: str
    seconds: float
    instance_id: str | None = None
    test_runs: list[float] = field(default_factory=list)  # seconds of each pytest run of this try


@dataclass
class SynthReport:
    package: str
    version: str
    seed: int
    image: str = ""
    build_seconds: float = 0.0
    baseline_seconds: float = 0.0
    baseline_passing: int = 0
    sites: int = 0
    tried: int = 0
    kept: int = 0
    existing: int = 0
    flaky: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def try_seconds(self) -> float:
        return sum(a.seconds for a in self.attempts)


def parse_release(text: str) -> tuple[str, str]:
    """``NAME==VERSION`` (or ``pypi:NAME==VERSION``) -> (name, version); `SynthRunError` otherwise."""
    raw = text.strip()
    try:
        parsed = parse_pypi_source(raw if raw.startswith("pypi:") else f"pypi:{raw}")
    except RepoError:
        parsed = None
    if not parsed:
        raise SynthRunError(f"--pypi {text!r}: expected NAME==VERSION, an exact release (e.g. toolz==1.0.0)")
    return parsed


def test_files(files: list[str]) -> list[str]:
    """The test modules of a source tree (``test_*.py`` / ``*_test.py`` under the usual test paths)."""
    return [f for f in files if is_test_path(f) and _TEST_FILE_RE.search(f)]


def _pytest_cmd(files: list[str]) -> str:
    quoted = " ".join(shlex.quote(f) for f in files)
    return f"python -m pytest -rA -p no:cacheprovider --tb=short -l {quoted}"


def _in_test_file(test_id: str) -> bool:
    return is_test_path(test_id.split("::", 1)[0])


def read_statuses(output: str, parse: Callable[[str], dict[str, str]]) -> dict[str, str]:
    """Statuses of the tests in test files; a test with a failed subtest (``SUBFAILED(x=1) id``, pytest
    >= 9, which also prints ``PASSED id`` for the test itself) counts as failed."""
    statuses = {k: v for k, v in parse(output).items() if _in_test_file(k)}
    for m in _SUBFAILED_RE.finditer(output):
        test = split_summary_rest(m["rest"])
        if test in statuses:
            statuses[test] = FAILED
    return statuses


class _Suite:
    """Runs pytest in the long-lived sandbox and reads the statuses."""

    def __init__(self, sb: Sandbox, parser: str) -> None:
        self.sb = sb
        self.parse = get_parser(parser)
        self.durations: list[float] = []  # seconds of every pytest run so far

    def run(self, files: list[str], timeout: float) -> tuple[dict[str, str], str, bool, float]:
        t0 = time.monotonic()
        res = self.sb.exec(f"cd {TESTBED} && {_pytest_cmd(files)} 2>&1", timeout=timeout)
        statuses = read_statuses(res.output, self.parse)
        self.durations.append(time.monotonic() - t0)
        return statuses, res.output, res.timed_out or res.limit is not None, self.durations[-1]

    def write(self, path: str, text: str) -> None:
        """Replace a file of the tree and drop its compiled bytecode (a same-size edit within the same
        second would otherwise reuse the stale .pyc)."""
        self.sb.write_file(f"{TESTBED}/{path}", text)
        folder, _, name = path.rpartition("/")
        pyc = f"{TESTBED}/{folder + '/' if folder else ''}__pycache__/{name[:-3]}.*.pyc"
        self.sb.exec(f"rm -f {pyc}", timeout=30)


def _sandbox_config(spec: TaskSpec, image: str) -> SandboxConfig:
    """The long-lived sandbox of one synthesis run: the task's limits, no network."""
    return SandboxConfig.for_task(spec, image, kind="synth", output_limit=2_000_000)


def _judge(
    baseline: set[str], statuses: dict[str, str], timed_out: bool, max_broken: float = 1.0
) -> tuple[list[str] | None, str]:
    """(broken tests, reason): broken is None when the mutation is rejected."""
    if timed_out:
        return None, "timed out"
    missing = sorted(t for t in baseline if t not in statuses)
    if missing:
        return None, f"{len(missing)} test(s) not collected (import or collection error)"
    collection = [t for t, s in statuses.items() if "::" not in t and s not in GOOD]
    if collection:
        return None, f"collection error in {collection[0]}"
    broken = sorted(t for t in baseline if statuses.get(t) not in GOOD)
    if not broken:
        return None, "no test breaks"
    if len(broken) > max_broken * len(baseline):
        return None, f"breaks too much ({len(broken)} of {len(baseline)} tests)"
    return broken, f"{len(broken)} test(s) break"


def _hide_words(site: MutationSite) -> list[str]:
    name = site.function.rsplit(".", 1)[-1]
    return [name, site.path, site.path.rsplit("/", 1)[-1]]


def synthesize(
    release: str,
    out: Path,
    n: int = 5,
    seed: int = 0,
    max_tries: int = 100,
    pip: list[str] | None = None,
    install: list[str] | None = None,
    client: docker.DockerClient | None = None,
    kinds: list[str] | None = None,
    progress: Progress | None = None,
    log_dir: Path | None = None,
    baseline_runs: int = 1,
    max_broken: float = 0.5,
) -> SynthReport:
    """Synthesize up to `n` tasks from `release` (``NAME==VERSION``) into `out` (see the module doc).

    `baseline_runs` > 1 runs the suite that many times on the original tree: tests whose status changes
    are flaky and left out of every task; `SynthReport.baseline_seconds` is the median run time. A
    mutation that breaks more than `max_broken` of the passing tests (a crash on a core path: a poor task,
    slow to grade) is rejected."""
    name, version = parse_release(release)
    report = SynthReport(name, version, seed)
    say = progress or (lambda _m, _r: None)
    say(f"source distribution {name}=={version}", report)
    repo, release_commit, tests, sources, sites = _release_sites(name, version, kinds, seed)
    report.sites = len(sites)

    env = EnvSpec(pip_packages=list(pip or DEFAULT_PIP_PACKAGES), install=list(install or DEFAULT_INSTALL))
    slug = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{name}-{version}")
    base = TaskSpec(
        instance_id=f"{slug}-synth-base",
        repo=name,
        repo_source=f"pypi:{name}=={version}",
        base_commit=release_commit,
        env=env,
    )
    log_dir = log_dir or Path("runs") / "build_logs" / base.instance_id
    t0 = time.monotonic()
    say("building the release's image", report)
    report.image = ensure_instance_image(base, client=client, log_dir=log_dir, log=lambda m: say(m, report))
    report.build_seconds = time.monotonic() - t0

    out.mkdir(parents=True, exist_ok=True)
    existing = {t.instance_id for t in load_tasks(str(out)).tasks} if any(out.glob("*.yaml")) else set()
    test_text = {p: read_file(repo, release_commit, p) or "" for p in tests}
    cfg = _sandbox_config(base, report.image)
    with Sandbox(cfg, client=client) as sb:
        suite = _Suite(sb, base.log_parser)
        say("running the test suite on the original tree", report)
        baseline, secs = _baseline(suite, tests, base, baseline_runs, report)
        limit = max(30.0, 3 * secs + 15)
        for site in sites:
            if report.kept >= n or report.tried >= max_tries:
                break
            recipe = make_recipe(name, version, site, seed)
            task_id = recipe_id(recipe)
            if task_id in existing:
                report.kept += 1
                report.existing += 1
                say(f"{task_id} exists", report)
                continue
            report.tried += 1
            attempt, broken, reason, out_text = _attempt_site(
                suite, site, sources[site.path], (tests, test_text, baseline), limit, max_broken, say, report
            )
            if broken is None:
                continue
            spec = _task(base, recipe, task_id, broken, baseline, out_text, site)
            attempt.instance_id = task_id
            path = write_task(spec, out / f"{task_id}.yaml")
            report.written.append(path)
            report.kept += 1
            say(f"kept {task_id}: {reason}", report)
    return report


def _release_sites(
    name: str, version: str, kinds: list[str] | None, seed: int
) -> tuple[Path, str, list[str], dict[str, str], list[MutationSite]]:
    """The release's repo and commit, its test files, its source texts and its mutation sites in the
    seeded order in which they are tried."""
    try:
        repo, release_commit = sdist_repo(name, version)
    except RepoError as exc:
        raise SynthRunError(str(exc)) from exc
    files = list_files(repo, release_commit)
    tests = test_files(files)
    if not tests:
        raise SynthRunError(f"{name}=={version}: its source distribution ships no test files (test_*.py)")
    sources = {p: read_file(repo, release_commit, p) or "" for p in files if is_source_file(p)}
    sites = [s for p, text in sorted(sources.items()) for s in enumerate_mutations(text, p)]
    if kinds:
        sites = [s for s in sites if s.kind in kinds]
    if not sites:
        raise SynthRunError(f"{name}=={version}: no mutation sites in its source files")
    random.Random(seed).shuffle(sites)
    return repo, release_commit, tests, sources, sites


def _baseline(
    suite: _Suite, tests: list[str], base: TaskSpec, baseline_runs: int, report: SynthReport
) -> tuple[set[str], float]:
    """Run the suite on the original tree `baseline_runs` times: the tests that pass in every run (one
    whose status changes is flaky and never used) and the first run's duration."""
    runs = [suite.run(tests, base.limits.test_timeout) for _ in range(max(1, baseline_runs))]
    statuses, output, timed_out, secs = runs[0]
    timed_out = any(r[2] for r in runs)
    report.baseline_seconds = statistics.median(r[3] for r in runs)
    baseline = {t for t, s in statuses.items() if s in GOOD and all(r[0].get(t) in GOOD for r in runs)}
    names = set().union(*(r[0] for r in runs))
    report.flaky = sorted(t for t in names if len({r[0].get(t) in GOOD for r in runs}) > 1)
    report.baseline_passing = len(baseline)
    if timed_out or not baseline:
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise SynthRunError(
            f"{report.package}=={report.version}: the test suite has no passing test on the original tree"
            f"{' (timed out)' if timed_out else ''}; pass test requirements with --pip. Output:\n{tail}"
        )
    return baseline, secs


def _attempt_site(
    suite: _Suite,
    site: MutationSite,
    original: str,
    suite_facts: tuple[list[str], dict[str, str], set[str]],
    limit: float,
    max_broken: float,
    say: Progress,
    report: SynthReport,
) -> tuple[Attempt, list[str] | None, str, str]:
    """Mutate `site` in the sandbox, judge the tests, restore the file; the attempt goes into `report`.

    `suite_facts` is (test files, their texts, the baseline's passing tests). Returns the attempt, the
    broken tests (None: rejected), the reason and the test output."""
    tests, test_text, baseline = suite_facts
    t1 = time.monotonic()
    mutated = apply_mutation(original, site)
    try:
        compile(mutated, site.path, "exec")
    except SyntaxError:
        attempt = Attempt(site.describe(), False, "syntax error", 0.0)
        report.attempts.append(attempt)
        return attempt, None, "syntax error", ""
    say(f"try {site.kind} in {site.path}", report)
    suite.write(site.path, mutated)
    first_run = len(suite.durations)
    try:
        broken, reason, out_text = _try(suite, site, tests, test_text, baseline, limit, max_broken)
    finally:
        suite.write(site.path, original)
    attempt = Attempt(site.describe(), broken is not None, reason, time.monotonic() - t1)
    attempt.test_runs = suite.durations[first_run:]
    report.attempts.append(attempt)
    return attempt, broken, reason, out_text


def _try(
    suite: _Suite,
    site: MutationSite,
    tests: list[str],
    test_text: dict[str, str],
    baseline: set[str],
    limit: float,
    max_broken: float,
) -> tuple[list[str] | None, str, str]:
    name = site.function.rsplit(".", 1)[-1]
    word = re.compile(rf"\b{re.escape(name)}\b")
    relevant = [p for p in tests if word.search(test_text[p])]
    if relevant and len(relevant) < len(tests):
        statuses, output, timed_out, _ = suite.run(relevant, limit)
        base_here = {t for t in baseline if t.split("::", 1)[0] in relevant}
        broken, reason = _judge(base_here, statuses, timed_out)
        if broken is None:
            return None, reason + " (tests naming the function)", output
    statuses, output, timed_out, _ = suite.run(tests, limit)
    broken, reason = _judge(baseline, statuses, timed_out, max_broken)
    if broken is None:
        return None, reason, output
    # a kept mutation must break the same tests again (threads, timing: no flaky task is written)
    again, _, timed_out, _ = suite.run(tests, limit)
    if _judge(baseline, again, timed_out, max_broken)[0] != broken:
        return None, "flaky under the mutation (a second run differs)", output
    return broken, reason, output


def _task(
    base: TaskSpec,
    recipe: dict,
    task_id: str,
    broken: list[str],
    baseline: set[str],
    output: str,
    site: MutationSite,
) -> TaskSpec:
    derived = materialize_synth(recipe)
    return TaskSpec(
        instance_id=task_id,
        repo=base.repo,
        repo_source=derived["repo_source"],
        base_commit=derived["base_commit"],
        problem_statement=problem_statement(base.repo, broken, output, _hide_words(site)),
        problem_statement_source="written",
        env=base.env,
        FAIL_TO_PASS=broken,
        PASS_TO_PASS=sorted(baseline - set(broken)),
        patch=derived["patch"],
        recipe=recipe,
    )


def check_written(paths: list[Path]) -> list[str]:
    """Load the written task files back; the load errors (none expected)."""
    if not paths:
        return []
    errors: list[str] = []
    for p in paths:
        errors += [str(e) for e in load_tasks(str(p)).errors]
    return errors


__all__ = ["SynthError", "SynthReport", "SynthRunError", "check_written", "parse_release", "synthesize"]
