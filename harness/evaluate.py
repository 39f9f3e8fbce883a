"""Patch evaluation: apply a candidate patch in a task's sandbox, run its tests, grade, report.

The core is :func:`run_instance` (one task, one patch -> `harness.grading.InstanceRun`, what happened)
and the pure `harness.grading.grade` (run -> `InstanceReport`): `srl evaluate`, `srl task validate`,
`srl run`, `srl traj replay` and the RLVR reward all call these two. A run costs one container and one
command that writes the patches (inside the command), applies the patch and the test patch and, when
they apply, installs the audit hook and runs the test command; the JUnit file and the audit log come
back in its output. The time spent preparing counts against the test timeout.

1. The candidate patch (CRLF normalised, newline-terminated) is tried with ``git apply``, then
   ``git apply --3way``, then ``patch --fuzz`` (dry run first, so it never half-applies), then, when
   normalising changed it, ``git apply`` of the original bytes. Every attempt is logged; files an
   attempt touched are restored before the next. Nothing applies -> ``patch_failed``.
2. Files the test patch touches, and test files (tests/, test_*.py, *_test.py, conftest.py) and
   bytecode (``__pycache__/``, ``*.pyc``) the candidate touched, go back to the base commit (or away,
   when the candidate created them); then the test patch is applied. A patch cannot edit the tests that
   judge it.
3. The test command runs with a wall-clock limit. For pytest, ``PYTEST_ADDOPTS`` adds ``-rA`` and
   ``--junitxml`` to a random path outside the repository; the harness reads that file back and
   cross-checks it, the log and the exit code (`harness.grading.cross_check`).
4. Tampering (`harness.tamper`): the diff is scanned; a PEP 578 audit hook, written into the
   environment's site-packages outside /testbed right before the tests, runs in every Python process of
   the test command and records result-file writes, early exits and runner patching; canary tests with
   random names and outcomes run with pytest. Any evidence makes the status ``tamper``.

:func:`evaluate_predictions` runs many instances (a local pool or Ray tasks) into
``<output>/<run-id>/<model>/<instance_id>/`` (``patch.diff``, ``eval.log``, ``test_output.txt``,
``report.json``) and writes ``summary.json`` per model. A finished instance (its ``report.json``
exists for the same patch) is skipped, so re-running a run id resumes it; every file is written to a
temporary name and renamed, ``report.json`` last.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import json
import os
import re
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from envs.spec import TaskSpec, is_test_path
from harness.grading import (
    STATUS_ORDER,
    InstanceReport,
    InstanceRun,
    grade,
    grading_log,
    observed_statuses,
)
from harness.log_parsers import StatusMap
from harness.predictions import GOLD, Prediction, gold_predictions, load_predictions, safe_name
from harness.tamper import audit_hook_source, canary_tests

if TYPE_CHECKING:
    import docker

REPORT = "report.json"
SUMMARY = "summary.json"
PATCH_FILE = "patch.diff"
EVAL_LOG = "eval.log"
TEST_OUTPUT = "test_output.txt"
TESTBED = "/testbed"

APPLY_METHODS = ("git apply", "git apply --3way", "patch --fuzz", "git apply (original line endings)")
_APPLIED_RE = re.compile(r"^>>>>> applied with: (.+)$", re.M)
_EXIT_PATCH_FAILED = 10
_EXIT_TEST_PATCH_FAILED = 11
_PATH_RE = re.compile(
    r"^(?:diff --git a/(\S+) b/(\S+)$|--- (?:a/)?([^\t\n]+?)(?:\t.*)?$|\+\+\+ (?:b/)?([^\t\n]+?)(?:\t.*)?$)",
    re.M,
)


# ----------------------------------------------------------------------------------------- patches


def normalize_patch(patch: str) -> str:
    """CRLF -> LF, and a final newline (``git apply`` calls a patch without one corrupt)."""
    if not patch.strip():
        return ""
    text = patch.replace("\r\n", "\n")
    return text if text.endswith("\n") else text + "\n"


def touched_paths(patch: str) -> list[str]:
    """Every repository path a diff names (old and new side), in order; tolerant of malformed diffs.

    Paths with spaces are read from the ``---``/``+++`` lines; absolute paths and ``..`` are dropped.
    """
    out: list[str] = []
    for m in _PATH_RE.finditer(patch.replace("\r\n", "\n")):
        for path in m.groups():
            if not path or path == "/dev/null" or path in out:
                continue
            if path.startswith("/") or ".." in path.split("/"):
                continue  # never a file of the repository; never restored or removed
            out.append(path)
    return out


_BYTECODE_RE = re.compile(r"(^|/)__pycache__/|\.py[cod]$")


def paths_to_reset(model_patch: str, test_patch: str) -> list[str]:
    """Files restored to the base commit before the test patch: its own files, and the test files and
    bytecode files the candidate touched (a planted ``__pycache__`` file could stand in for a test module
    whose source it does not change: the instance images ship the tests' compiled modules)."""
    out = touched_paths(test_patch)
    out += [
        p for p in touched_paths(model_patch) if (is_test_path(p) or _BYTECODE_RE.search(p)) and p not in out
    ]
    return out


def _bash_array(items: Iterable[str]) -> str:
    return "(" + " ".join(shlex.quote(i) for i in items) + ")"


_PREPARE = r"""
cd {testbed} || exit 2
D={dir}
CAND={candidate}
RESET={reset}
echo ">>>>> base $(git rev-parse HEAD 2>/dev/null)"
git status --porcelain --untracked-files=no 2>/dev/null | head -n 5 | sed 's/^/>>>>> dirty /'
restore() {{ git reset -q 2>/dev/null
  for f in "$@"; do
    if git cat-file -e HEAD:"$f" 2>/dev/null; then git checkout -q HEAD -- "$f"; else rm -rf -- "$f"; fi
  done; }}
attempt() {{ local name=$1; shift
  echo ">>>>> attempt: $name"
  if "$@" 2>&1; then echo ">>>>> applied with: $name"; return 0; fi
  echo ">>>>> $name failed"; restore "${{CAND[@]}}"; return 1; }}
fuzz() {{ local out; out=$(patch --batch --forward --fuzz=3 -p1 --no-backup-if-mismatch -r - --dry-run -i "$1" 2>&1) ||
  {{ printf '%s\n' "$out"; return 1; }}
  patch --batch --forward --fuzz=3 -p1 --no-backup-if-mismatch -r - -i "$1"; }}
if [ -s "$D/model.patch" ]; then
  attempt "git apply" git apply --verbose --whitespace=nowarn "$D/model.patch" ||
  attempt "git apply --3way" git apply --verbose --3way --whitespace=nowarn "$D/model.patch" ||
  attempt "patch --fuzz" fuzz "$D/model.patch" ||
  {{ [ -f "$D/model.orig.patch" ] &&
     attempt "git apply (original line endings)" git apply --verbose "$D/model.orig.patch"; }} ||
  {{ echo ">>>>> the patch does not apply"; exit {patch_failed}; }}
  git reset -q 2>/dev/null
fi
echo ">>>>> resetting ${{#RESET[@]}} test file(s) to the base commit"
restore "${{RESET[@]}}"
if [ -s "$D/test.patch" ]; then
  echo ">>>>> applying the test patch"
  git apply --verbose --whitespace=nowarn "$D/test.patch" 2>&1 || {{ echo ">>>>> the test patch does not apply"; exit {test_patch_failed}; }}
fi
if [ -s "$D/canary.py" ]; then
  C={canary}
  if [ -d "$(dirname "$C")" ] && [ ! -e "$C" ]; then cp "$D/canary.py" "$C" && echo ">>>>> canary tests: $C"; fi
fi
exit 0
"""


def prepare_script(
    workdir: str, candidate: list[str], reset: list[str], testbed: str = TESTBED, canary: str = ""
) -> str:
    """Bash that applies ``$D/model.patch`` (with fallbacks), resets test files, applies ``$D/test.patch``
    and places ``$D/canary.py`` at ``canary`` (when its directory exists).

    Exit status: 0 ready, 10 the candidate patch does not apply, 11 the test patch does not apply.
    """
    return _PREPARE.format(
        testbed=shlex.quote(testbed),
        dir=shlex.quote(workdir),
        candidate=_bash_array(candidate),
        reset=_bash_array(reset),
        canary=shlex.quote(canary or "-"),
        patch_failed=_EXIT_PATCH_FAILED,
        test_patch_failed=_EXIT_TEST_PATCH_FAILED,
    )


def build_test_command(spec: TaskSpec, junit_path: str, canary: str | None = None) -> str:
    """The test command, in a subshell, with the JUnit path exported (and given to pytest, with the
    canary module, when there is one, as one more file to run)."""
    env = [f"SRL_JUNIT_XML={shlex.quote(junit_path)}"]
    if spec.log_parser == "pytest":
        opts = f"-rA --junitxml={junit_path} -o junit_family=xunit1" + (f" {canary}" if canary else "")
        env.append(f"PYTEST_ADDOPTS={shlex.quote(opts)}")
    return f"( cd {TESTBED} && export {' '.join(env)} && {spec.test_command()} )"


def install_audit_hook(workdir: str, token: str) -> str:
    """Bash that puts the audit hook (``$D/audit.py``) into the site-packages of the ``python`` the tests
    run with, outside the repository, loaded by a ``.pth`` file sorted first (before any other .pth)."""
    find = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return (
        f'__sp=$(cd / && python -I -c {shlex.quote(find)} 2>/dev/null) && [ -d "$__sp" ] && '
        f'cp {workdir}/audit.py "$__sp/_srl_audit_{token}.py" && '
        f"echo 'import _srl_audit_{token}' > \"$__sp/00srl_{token}.pth\" "
        f"|| echo '>>>>> the audit hook could not be installed'"
    )


# ---------------------------------------------------------------------------------------- one instance


@dataclass
class InstanceOutcome:
    """A report, the files that go next to it (name -> text) and the status of every test the run
    reported (cross-checked like the graded ones; for discovering FAIL_TO_PASS / PASS_TO_PASS)."""

    report: InstanceReport
    files: dict[str, str] = field(default_factory=dict)
    statuses: StatusMap = field(default_factory=dict)


def _sandbox_config(spec: TaskSpec, image: str, timeout: float, labels: dict[str, str]):
    from harness.sandbox import SandboxConfig

    return SandboxConfig(
        image=image,
        cpus=spec.limits.cpus,
        memory=spec.limits.memory,
        pids_limit=spec.limits.pids,
        timeout=timeout,
        workdir=TESTBED,
        network=False,
        extra_labels=labels,
    )


def run_instance(
    spec: TaskSpec,
    patch: str | None,
    *,
    model: str = GOLD,
    client: docker.DockerClient | None = None,
    timeout: float | None = None,
    rebuild: bool = False,
    build_log_dir: Path | None = None,
    labels: dict[str, str] | None = None,
    on_sandbox: Callable[[Any], None] | None = None,
    release: Callable[[Any], None] | None = None,
    run_empty: bool = False,
    checks: bool | tuple[str, ...] = True,
) -> InstanceRun:
    """The one way an instance runs: prepare, apply ``patch`` (with fallbacks), reset test and compiled
    files, apply the test patch, run the tests, collect their output and result files. Never raises for
    a bad patch or a broken environment (``run.error`` says what failed); `harness.grading.grade` grades.

    An empty patch starts no container, unless ``run_empty`` (task validation: the tests at the base
    commit plus the test patch). ``on_sandbox`` is called with the open sandbox (so a caller can close
    it from another thread); ``release``, when given, is called instead of closing the sandbox at the
    end and must close it. ``checks``: which runtime checks to add, ``("audit", "canary")`` (True) or
    fewer (for measuring their cost only; a run without them is graded on fewer signals).
    """
    started = time.monotonic()
    run = InstanceRun(
        instance_id=spec.instance_id,
        model=model,
        patch=patch,
        patch_sha256=Prediction(
            instance_id=spec.instance_id, model_name_or_path=model, model_patch=patch
        ).patch_sha256,
        run_empty=run_empty,
    )
    if not run.patch_exists and not run_empty:
        run.log.append("the patch is empty: nothing to apply, no tests run")
        return run
    try:
        _run_in_sandbox(
            spec,
            patch or "",
            run,
            client=client,
            timeout=float(timeout or spec.limits.test_timeout),
            rebuild=rebuild,
            build_log_dir=build_log_dir,
            labels=labels or {},
            on_sandbox=on_sandbox,
            release=release,
            checks=checks,
        )
    except Exception as exc:  # an infrastructure failure is this instance's "error", not the run's
        run.error = f"{type(exc).__name__}: {exc}"
        run.log.append(f">>>>> error: {run.error}")
    run.duration_s = round(time.monotonic() - started, 3)
    return run


def evaluate_instance(spec: TaskSpec, patch: str | None, **kwargs: Any) -> InstanceOutcome:
    """`run_instance` then `grade`, with the files that go next to the report (see `outcome_of`)."""
    run = run_instance(spec, patch, **kwargs)
    return outcome_of(spec, run, grade(spec, run))


def outcome_of(spec: TaskSpec, run: InstanceRun, report: InstanceReport) -> InstanceOutcome:
    """The report with its files: the patch, ``eval.log`` (preparation and grading) and the test output."""
    files = {PATCH_FILE: run.patch or ""}
    log = list(run.log)
    if run.started and run.prepare_rc == 0 and run.error is None:
        log += grading_log(report, spec)
    files[EVAL_LOG] = "\n".join(log) + "\n"
    if run.prepare_rc == 0:
        files[TEST_OUTPUT] = run.test_output
    statuses = observed_statuses(spec, run) if run.prepare_rc == 0 and run.error is None else {}
    return InstanceOutcome(report, files, statuses)


def _run_in_sandbox(
    spec: TaskSpec,
    patch: str,
    run: InstanceRun,
    *,
    client: docker.DockerClient | None,
    timeout: float,
    rebuild: bool,
    build_log_dir: Path | None,
    labels: dict[str, str],
    on_sandbox: Callable[[Any], None] | None,
    release: Callable[[Any], None] | None,
    checks: bool | tuple[str, ...],
) -> None:
    from harness.docker_env import get_client
    from harness.images import ensure_instance_image
    from harness.sandbox import Sandbox

    client = client or get_client()
    image = ensure_instance_image(spec, client=client, rebuild=rebuild, log_dir=build_log_dir)
    token = secrets.token_hex(12)
    workdir = f"/tmp/srl-eval-{token}"
    junit_path = f"/tmp/srl-results-{secrets.token_hex(12)}.xml"
    audit_path = f"/tmp/srl-audit-{secrets.token_hex(12)}.log"
    normalized = normalize_patch(patch)
    wanted = ("audit", "canary") if checks is True else checks or ()
    canary = (
        canary_tests(spec.test_command(), spec.tests_to_run(), spec.log_parser)
        if "canary" in wanted
        else None
    )
    audit = "audit" in wanted
    payload = {
        "model.patch": normalized,
        "test.patch": spec.test_patch,
        "prepare.sh": prepare_script(
            workdir,
            touched_paths(patch),
            paths_to_reset(patch, spec.test_patch),
            canary=canary.file if canary else "",
        ),  # fmt: skip
    }
    if audit:
        result = junit_path if spec.log_parser == "pytest" else None  # written by pytest's junitxml.py
        payload["audit.py"] = audit_hook_source(audit_path, result)
    if canary is not None:
        payload["canary.py"] = canary.source()
    if normalized != patch and normalized != patch + "\n":
        payload["model.orig.patch"] = patch
    sb = Sandbox(_sandbox_config(spec, image, timeout, {"kind": "evaluate", **labels}), client=client)
    try:
        if on_sandbox is not None:
            on_sandbox(sb)
        run.started = True
        # one command, the container's main process (no shell session, no `docker exec`): the files
        # travel inside it (base64); the preparation's log and exit status, then the test output, then
        # the JUnit file and the audit log (base64) follow each other separated by markers with a random
        # token (the patch cannot print them ahead of time); the tests run only when the repository is
        # ready, and the command's exit status is theirs
        writes = " && ".join(
            f"echo {base64.b64encode(text.encode()).decode()} | base64 -d > {workdir}/{name}"
            for name, text in payload.items()
        )
        prepared, results, audited = (f">>>>> {what} {token}" for what in ("prepared", "junit", "audit"))
        hook = f"{install_audit_hook(workdir, token)}; " if audit else ""
        command = (
            f"mkdir -p {workdir} && {writes} && bash {workdir}/prepare.sh > {workdir}/prepare.log 2>&1; "
            f"__rc=$?; echo $__rc > {workdir}/prepare.rc; cat {workdir}/prepare.log; "
            f'echo "{prepared} $__rc"; '
            f"if [ $__rc -eq 0 ]; then {hook}"
            f"{build_test_command(spec, junit_path, canary.file if canary else None)}; __rc=$?; "
            f"echo; echo '{results}'; base64 -w0 {junit_path} 2>/dev/null; echo; "
            f"echo '{audited}'; base64 -w0 {audit_path} 2>/dev/null; echo; fi; (exit $__rc)"
        )
        res = sb.run_once(command, timeout=timeout)
        prep_out, prep_rc, test_out = _split_prepared(res.output, prepared)
        test_out, audit_bytes = _split_marked(test_out, audited)
        test_out, junit = _split_marked(test_out, results)
        if prep_rc is None and (res.timed_out or res.limit):
            # killed before the preparation reported (or its report was cut): the files still tell
            prep_out, prep_rc = _read_prepared(sb, workdir)
            test_out = res.output
        run.prepare_log, run.prepare_rc = prep_out, prep_rc
        run.log.append(prep_out.rstrip("\n"))
        applied = _APPLIED_RE.search(prep_out)
        run.apply_method = applied.group(1) if applied else None
        head = re.search(r"^>>>>> base (\S*)$", prep_out, re.M)
        run.base_head = head.group(1) if head else None
        run.base_dirty = re.findall(r"^>>>>> dirty (.*)$", prep_out, re.M)
        run.timed_out, run.exit_code, run.limit = res.timed_out, res.exit_code, res.limit
        run.test_duration = res.duration
        if prep_rc != 0:
            if prep_rc is None:
                run.exit_code = res.exit_code
            return
        run.canary = (
            canary if canary is not None and f">>>>> canary tests: {canary.file}" in prep_out else None
        )
        run.test_command = spec.test_command()
        run.test_output = test_out
        run.log.append(f">>>>> running: {spec.test_command()}  (limit {timeout:g} s)")
        run.log.append(
            f">>>>> test command: exit {res.exit_code}, {res.duration:.2f} s"
            + (", timed out" if res.timed_out else "")
            + (f", limit hit: {res.limit}" if res.limit else "")
        )
        if junit is None:  # not in the output (cut by the output limit, or killed at the time limit)
            junit = _read_optional(sb, junit_path)
        run.junit = junit or None  # b"": the file was not written
        if audit:
            if audit_bytes is None:
                audit_bytes = _read_optional(sb, audit_path)
            run.audit_log = (audit_bytes or b"").decode("utf-8", "replace")
    finally:
        (release or _close)(sb)


def _split_prepared(output: str, marker: str) -> tuple[str, int | None, str]:
    """(preparation log, its exit status or None when the marker is missing, test output)."""
    prep_out, found, rest = output.partition(marker + " ")
    if not found:
        return output, None, ""
    rc_text, _, test_out = rest.partition("\n")
    return prep_out, int(rc_text) if rc_text.strip().isdigit() else None, test_out


def _split_marked(test_out: str, marker: str) -> tuple[str, bytes | None]:
    """(the text before the marker's line, the base64 file after it: b"" when the file was not written,
    None when the marker is not in the output)."""
    head, found, tail = test_out.rpartition(f"\n{marker}\n")
    if not found:
        return test_out, None
    try:
        return head, base64.b64decode(tail.strip(), validate=True)
    except ValueError:
        return head, None


def _read_optional(sb: Any, path: str) -> bytes | None:
    try:
        return sb.read_file(path)
    except (FileNotFoundError, IsADirectoryError):
        return None


def _read_prepared(sb: Any, workdir: str) -> tuple[str, int | None]:
    try:
        log = sb.read_file(f"{workdir}/prepare.log").decode("utf-8", "replace")
        rc = sb.read_file(f"{workdir}/prepare.rc").decode().strip()
    except (FileNotFoundError, IsADirectoryError):
        return "", None
    return log, int(rc) if rc.isdigit() else None


def _close(sb: Any) -> None:
    sb.close()


# ------------------------------------------------------------------------------------------ files


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a crash) sees the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_outcome(outcome: InstanceOutcome, out_dir: Path) -> None:
    """The instance's files, then ``report.json`` last (its presence means "finished")."""
    for name, text in outcome.files.items():
        atomic_write(out_dir / name, text)
    atomic_write(out_dir / REPORT, json.dumps(outcome.report.to_swebench(), indent=2) + "\n")


def read_report(out_dir: Path) -> InstanceReport | None:
    """The finished report in ``out_dir``, or None when absent or unreadable (then it is re-run)."""
    try:
        return InstanceReport.from_swebench(json.loads((out_dir / REPORT).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------ many


class EvaluateConfig(BaseModel):
    """Everything ``srl evaluate`` can be told."""

    model_config = ConfigDict(extra="forbid")

    predictions: str = Field(description="predictions file (JSON, JSON object or JSONL) or 'gold'")
    tasks: str | None = Field(None, description="task source (see envs.sources); default: bundled examples")
    repos: Path | None = Field(None, description="directory with owner__name checkouts or bundles")
    instance_ids: list[str] = Field(default_factory=list, description="only these instances")
    max_workers: int = Field(1, ge=1, description="sandboxes at once")
    run_id: str | None = Field(None, description="re-use to resume; default: the predictions file's stem")
    timeout: float | None = Field(None, gt=0, description="seconds per test run; default: the task's")
    backend: Literal["process", "ray"] = "process"
    output_dir: Path = Path("runs/evaluation")
    rebuild: bool = False
    ray_address: str | None = Field(None, description="Ray cluster address; default: RAY_ADDRESS or local")


class EvaluationInputError(ValueError):
    """The tasks, predictions or instance ids given cannot be evaluated (message says why)."""


@dataclass
class Job:
    spec: TaskSpec
    prediction: Prediction
    out_dir: Path


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    reports: list[InstanceReport]
    skipped: int
    summaries: dict[str, dict[str, Any]]


def plan(config: EvaluateConfig) -> tuple[str, Path, list[Job], list[str]]:
    """Load tasks and predictions; return the run id, run dir, the jobs and warnings."""
    from envs.sources import load_tasks

    loaded = load_tasks(config.tasks, config.repos)
    warnings = [f"task not loaded: {err}" for err in loaded.errors]
    by_id = loaded.by_id()
    if not by_id:
        raise EvaluationInputError(
            f"no tasks could be loaded from {config.tasks or 'the bundled examples'}"
            + (f": {loaded.errors[0]}" if loaded.errors else "")
        )
    if config.predictions == GOLD:
        predictions = gold_predictions(by_id.values())
        run_id = config.run_id or GOLD
    else:
        broken = {err.instance_id: err for err in loaded.errors if err.instance_id}
        predictions = load_predictions(config.predictions, known_ids=[*by_id, *broken])
        for pred in predictions:
            if pred.instance_id in broken and pred.instance_id not in by_id:
                warnings.append(f"{pred.instance_id}: not evaluated, its task could not be loaded")
        predictions = [p for p in predictions if p.instance_id in by_id]
        run_id = config.run_id or safe_name(Path(config.predictions).stem)
    if config.instance_ids:
        unknown = [i for i in config.instance_ids if i not in by_id]
        if unknown:
            raise EvaluationInputError(f"--instance-ids: no task named {', '.join(map(repr, unknown))}")
        wanted = set(config.instance_ids)
        predictions = [p for p in predictions if p.instance_id in wanted]
        missing = wanted - {p.instance_id for p in predictions}
        if missing:
            raise EvaluationInputError(f"--instance-ids: no prediction for {', '.join(sorted(missing))}")
    if safe_name(run_id) != run_id:
        raise EvaluationInputError(f"--run-id {run_id!r}: use letters, digits, '.', '_', '+', '-' only")
    run_dir = config.output_dir / run_id
    jobs = [Job(by_id[p.instance_id], p, run_dir / p.model_dir / p.instance_id) for p in predictions]
    return run_id, run_dir, jobs, warnings


def _remove_dead_temp_files(out_dir: Path) -> None:
    """Remove the temporary files (``.<name>.<pid>.<token>.tmp``, see `atomic_write`) that a killed
    process left half-written; another live process's are left alone."""
    for tmp in out_dir.glob(".*.tmp"):
        parts = tmp.name.split(".")
        if len(parts) >= 4 and parts[-3].isdigit() and not _alive(int(parts[-3])):
            tmp.unlink(missing_ok=True)


def _finished(job: Job) -> InstanceReport | None:
    report = read_report(job.out_dir)
    if report is None or report.patch_sha256 != job.prediction.patch_sha256:
        return None
    return report


def summarize(
    reports: list[InstanceReport], model: str, run_id: str, submitted: list[str] | None = None
) -> dict[str, Any]:
    """SWE-bench-style run summary (its keys, plus counts and id lists for our other statuses).

    ``submitted`` are the instance ids the run was asked to evaluate (default: those reported); one
    without a report (an interrupted run) is listed in ``incomplete_ids`` and counts as not resolved.
    """
    by_status: dict[str, list[str]] = {s: [] for s in STATUS_ORDER}
    for r in sorted(reports, key=lambda r: r.instance_id):
        by_status[r.status].append(r.instance_id)
    reported = {r.instance_id for r in reports}
    submitted_ids = sorted(set(submitted if submitted is not None else reported) | reported)
    completed = sorted(
        by_status["resolved"] + by_status["unresolved"] + by_status["tamper"] + by_status["env_error"]
    )
    total = len(submitted_ids)
    return {
        "run_id": run_id,
        "model_name_or_path": model,
        "total_instances": total,
        "submitted_instances": total,
        "completed_instances": len(completed),
        "resolved_instances": len(by_status["resolved"]),
        "unresolved_instances": len(by_status["unresolved"]),
        "tamper_instances": len(by_status["tamper"]),
        "env_error_instances": len(by_status["env_error"]),
        "empty_patch_instances": len(by_status["empty_patch"]),
        "patch_failed_instances": len(by_status["patch_failed"]),
        "timeout_instances": len(by_status["timeout"]),
        "error_instances": len(by_status["error"]),
        "incomplete_instances": total - len(reported),
        "resolved_rate": round(len(by_status["resolved"]) / total, 4) if total else 0.0,
        "submitted_ids": submitted_ids,
        "completed_ids": completed,
        "incomplete_ids": [i for i in submitted_ids if i not in reported],
        **{f"{status}_ids": ids for status, ids in by_status.items()},
        "schema_version": 2,
    }


class _LiveSandboxes:
    """Sandboxes open in worker threads: closed in the background once an instance is done (removing a
    container overlaps with the next instance), and all at once on Ctrl-C."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[Any] = set()
        self._closing: list[threading.Thread] = []

    def add(self, sb: Any) -> None:
        with self._lock:
            self._open.add(sb)

    def release(self, sb: Any) -> None:
        def close() -> None:
            try:
                sb.close()
            finally:
                with self._lock:
                    self._open.discard(sb)

        thread = threading.Thread(target=close, name="srl-eval-close", daemon=True)
        with self._lock:  # started before it is listed: a concurrent drain() may join it at once
            thread.start()
            self._closing.append(thread)

    def drain(self) -> None:
        """Wait until every released sandbox is gone."""
        with self._lock:
            closing, self._closing = self._closing, []
        for thread in closing:
            thread.join()

    def close_all(self) -> None:
        with self._lock:
            live, self._open = list(self._open), set()
        for sb in live:
            try:
                sb.close()
            except Exception:  # already gone
                pass
        self.drain()


def _run_pool(
    jobs: list[Job], config: EvaluateConfig, run_id: str, done: Callable[[Job, InstanceOutcome], None]
) -> None:
    """The local backend: up to ``max_workers`` sandboxes at once, driven by threads (the work itself
    runs in the containers, so threads are enough and start instantly)."""
    from harness.docker_env import get_client
    from harness.sandbox import prewarm_netns

    client = get_client()
    if len(jobs) > config.max_workers:  # each worker starts several sandboxes: worth a namespace each
        prewarm_netns(client, config.max_workers)
    remove_stale_sandboxes(client, run_id)
    live = _LiveSandboxes()

    def work(job: Job) -> InstanceOutcome:
        return evaluate_instance(
            job.spec,
            job.prediction.model_patch,
            model=job.prediction.model_name_or_path,
            client=client,
            timeout=config.timeout,
            rebuild=config.rebuild,
            build_log_dir=job.out_dir / "build",
            labels={"run_id": run_id},
            on_sandbox=live.add,
            release=live.release,
        )

    pool = cf.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="srl-eval")
    try:
        futures = {pool.submit(work, job): job for job in jobs}
        for fut in cf.as_completed(futures):
            done(futures[fut], fut.result())
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        live.close_all()
        raise
    pool.shutdown(wait=True)
    live.drain()


def remove_stale_sandboxes(client: docker.DockerClient, run_id: str) -> int:
    """Remove this run id's evaluation containers left by a process of this host that no longer exists
    (a killed earlier run); returns how many. Containers another host started are left alone."""
    import socket

    from harness.docker_env import LABEL

    removed = 0
    flt = {"label": [f"{LABEL}.kind=evaluate", f"{LABEL}.run_id={run_id}"]}
    for container in client.containers.list(all=True, filters=flt):
        labels = container.labels or {}
        if labels.get(f"{LABEL}.host", socket.gethostname()) != socket.gethostname():
            continue
        pid = labels.get(f"{LABEL}.pid", "")
        if pid.isdigit() and _alive(int(pid)):
            continue
        try:
            container.remove(force=True)
            removed += 1
        except Exception:  # removed meanwhile
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ray_evaluate(
    spec: TaskSpec, prediction: Prediction, timeout: float | None, rebuild: bool, run_id: str
) -> InstanceOutcome:
    return evaluate_instance(
        spec,
        prediction.model_patch,
        model=prediction.model_name_or_path,
        timeout=timeout,
        rebuild=rebuild,
        labels={"run_id": run_id},
    )


def _memory_bytes(text: str) -> int:
    m = re.fullmatch(r"(\d+)([kmgKMG]?)", text.strip())
    if not m:
        return 2 << 30
    return int(m[1]) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m[2].lower()]


def _run_ray(
    jobs: list[Job], config: EvaluateConfig, run_id: str, done: Callable[[Job, InstanceOutcome], None]
) -> None:
    """Each instance as a Ray task asking for the task's CPUs and memory; files are written here."""
    try:
        import ray
    except ImportError:
        raise EvaluationInputError("--backend ray needs the ray extra: pip install 'srl-swe[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=config.ray_address or os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    try:
        remote = ray.remote(_ray_evaluate)
        refs = {
            remote.options(
                num_cpus=job.spec.limits.cpus,
                memory=_memory_bytes(job.spec.limits.memory),
                max_retries=0,
                name=f"srl-evaluate:{job.prediction.instance_id}",
            ).remote(job.spec, job.prediction, config.timeout, config.rebuild, run_id): job
            for job in jobs
        }
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    done(refs[ref], ray.get(ref))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started_here:
            ray.shutdown()


def evaluate_predictions(
    config: EvaluateConfig,
    *,
    on_start: Callable[[str, Path, int, int, list[str]], None] | None = None,
    on_done: Callable[[InstanceReport], None] | None = None,
) -> RunResult:
    """Evaluate every (prediction, task) pair of ``config`` not already finished in this run id.

    ``on_start(run_id, run_dir, to_run, skipped, warnings)`` and ``on_done(report)`` drive a progress
    display; ``warnings`` name tasks of the source that could not be loaded.
    """
    run_id, run_dir, jobs, warnings = plan(config)
    finished: dict[tuple[str, str], InstanceReport] = {}
    todo: list[Job] = []
    for job in jobs:
        if job.out_dir.is_dir():  # a killed earlier run of this run id may have left half-written files
            _remove_dead_temp_files(job.out_dir)
        report = _finished(job)
        if report is not None:
            finished[(job.prediction.model_dir, job.prediction.instance_id)] = report
        else:
            todo.append(job)
    # the biggest test sets first (a test's count is the best cost estimate at hand): a long instance
    # started last would leave the other workers idle at the end
    todo.sort(key=lambda job: -(len(job.spec.FAIL_TO_PASS) + len(job.spec.PASS_TO_PASS)))
    if on_start is not None:
        on_start(run_id, run_dir, len(todo), len(finished), warnings)
    new: list[InstanceReport] = []
    lock = threading.Lock()

    def done(job: Job, outcome: InstanceOutcome) -> None:
        write_outcome(outcome, job.out_dir)
        with lock:
            new.append(outcome.report)
            finished[(job.prediction.model_dir, job.prediction.instance_id)] = outcome.report
        if on_done is not None:
            on_done(outcome.report)

    try:
        if todo:
            runner = _run_ray if config.backend == "ray" else _run_pool
            runner(todo, config, run_id, done)
    finally:
        summaries = _write_summaries(jobs, finished, run_dir, run_id)
    return RunResult(run_id, run_dir, new, len(jobs) - len(todo), summaries)


def _write_summaries(
    jobs: list[Job], finished: dict[tuple[str, str], InstanceReport], run_dir: Path, run_id: str
) -> dict[str, dict[str, Any]]:
    models: dict[str, tuple[str, list[InstanceReport]]] = {}
    for job in jobs:
        key = (job.prediction.model_dir, job.prediction.instance_id)
        entry = models.setdefault(job.prediction.model_dir, (job.prediction.model_name_or_path, []))
        if key in finished:
            entry[1].append(finished[key])
    summaries = {}
    for model_dir, (model, reports) in models.items():
        submitted = [j.prediction.instance_id for j in jobs if j.prediction.model_dir == model_dir]
        summary = summarize(reports, model, run_id, submitted)
        atomic_write(run_dir / model_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
        summaries[model_dir] = summary
    return summaries
