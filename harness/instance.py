"""One instance, one patch: :func:`run_instance` runs it (-> `harness.grading.InstanceRun`, what
happened) and the pure `harness.grading.grade` grades it. `srl evaluate`, `srl task validate`,
`srl run`, `srl traj replay` and the RLVR reward all call these two.

A run costs one container and one command that writes the patches (inside the command), runs the
preparation (`harness.prepare`: apply with fallbacks, reset test and compiled files, apply the test
patch, place the canaries) and, when it succeeds, installs the audit hook and runs the test command;
the result file and the audit log come back in its output. The time spent preparing counts against the
test timeout. For pytest, ``PYTEST_ADDOPTS`` adds ``-rA`` and ``--junitxml`` to a random path outside
the repository; the harness reads that file back and cross-checks it, the log and the exit code
(`harness.grading.cross_check`). Tampering (`harness.tamper`): the diff is scanned; a PEP 578 audit
hook, written into the environment's site-packages outside /testbed right before the tests, runs in
every Python process of the test command and records result-file writes, early exits and runner
patching; canary tests with random names and outcomes run with the tests. Any evidence makes the
status ``tamper``.

:func:`outcome_of` gives the report with the files that go next to it, :func:`write_outcome` writes
them (``report.json`` last, each file through a temporary name and a rename).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envs.spec import TaskSpec
from envs.swebench_eval import EvalScript, eval_script_of, runner_script, split_output
from harness.audit_hook import audit_hook_source
from harness.grading import InstanceReport, InstanceRun, grade, grading_log, observed_statuses
from harness.log_parsers import StatusMap
from harness.predictions import GOLD, Prediction
from harness.prepare import (
    build_test_command,
    install_audit_hook,
    normalize_patch,
    paths_to_reset,
    prepare_script,
    touched_paths,
)
from harness.tamper import Canary, canary_tests, runner_of

if TYPE_CHECKING:
    import docker

REPORT = "report.json"
PATCH_FILE = "patch.diff"
EVAL_LOG = "eval.log"
TEST_OUTPUT = "test_output.txt"

_APPLIED_RE = re.compile(r"^>>>>> applied with: (.+)$", re.M)


@dataclass
class InstanceOutcome:
    """A report, the files that go next to it (name -> text) and the status of every test the run
    reported (cross-checked like the graded ones; for discovering FAIL_TO_PASS / PASS_TO_PASS)."""

    report: InstanceReport
    files: dict[str, str] = field(default_factory=dict)
    statuses: StatusMap = field(default_factory=dict)


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
    base: dict[str, Any] = {
        "instance_id": spec.instance_id,
        "model": model,
        "patch": patch,
        "patch_sha256": Prediction(
            instance_id=spec.instance_id, model_name_or_path=model, model_patch=patch
        ).patch_sha256,
        "run_empty": run_empty,
    }
    if not (patch and patch.strip()) and not run_empty:
        return InstanceRun(**base, log=["the patch is empty: nothing to apply, no tests run"])
    opened: list[Any] = []  # the sandbox, once there is one (a failure after that still "started")

    def opening(sb: Any) -> None:
        opened.append(sb)
        if on_sandbox is not None:
            on_sandbox(sb)

    try:
        fields = _run_in_sandbox(
            spec,
            patch or "",
            client=client,
            timeout=float(timeout or spec.limits.test_timeout),
            rebuild=rebuild,
            build_log_dir=build_log_dir,
            labels=labels or {},
            on_sandbox=opening,
            release=release,
            checks=checks,
        )
    except Exception as exc:  # an infrastructure failure is this instance's "error", not the run's
        error = f"{type(exc).__name__}: {exc}"
        fields = {"started": bool(opened), "error": error, "log": [f">>>>> error: {error}"]}
    return InstanceRun(**base, **fields, duration_s=round(time.monotonic() - started, 3))


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


# ----------------------------------------------------------------------------------- in the sandbox


@dataclass(frozen=True)
class _RunPlan:
    """Where everything goes in the container for one run, and the files that travel with the command."""

    token: str
    workdir: str
    junit_path: str  # pytest's JUnit file
    record_path: str | None  # the result record the audit hook keeps for unittest, Django, sympy
    audit_path: str
    canary: Canary | None
    audit: bool
    payload: dict[str, str]
    eval_script: EvalScript | None = None  # a row's eval_script, run instead of the test command

    def marker(self, what: str) -> str:
        return f">>>>> {what} {self.token}"


def _plan_run(spec: TaskSpec, patch: str, checks: bool | tuple[str, ...]) -> _RunPlan:
    token = secrets.token_hex(12)
    workdir = f"/tmp/srl-eval-{token}"
    junit_path = f"/tmp/srl-results-{secrets.token_hex(12)}.xml"
    audit_path = f"/tmp/srl-audit-{secrets.token_hex(12)}.log"
    wanted = ("audit", "canary") if checks is True else checks or ()
    runner = runner_of(spec.test_command(), spec.log_parser)
    eval_script = eval_script_of(spec)
    record_path = (
        f"/tmp/srl-record-{secrets.token_hex(12)}.tsv"
        if "audit" in wanted and runner in ("unittest", "django", "sympy")
        else None
    )
    canary = (
        canary_tests(spec.test_command(), spec.tests_to_run(), spec.log_parser)
        if "canary" in wanted and (eval_script is None or runner == "pytest")  # no argument to append to
        else None
    )
    canary_files = canary.files() if canary is not None else {}
    normalized = normalize_patch(patch)
    payload = {
        "model.patch": normalized,
        "test.patch": spec.test_patch,
        "prepare.sh": prepare_script(
            workdir,
            touched_paths(patch),
            paths_to_reset(patch, spec.test_patch),
            canary=list(canary_files),
            canary_root=canary.root if canary else None,
        ),  # fmt: skip
    }
    if "audit" in wanted:
        result = junit_path if spec.log_parser == "pytest" else None  # written by pytest's junitxml.py
        payload["audit.py"] = audit_hook_source(audit_path, result, runner, record_path)
    for i, text in enumerate(canary_files.values()):
        payload[f"canary-{i}.py"] = text
    if normalized != patch and normalized != patch + "\n":
        payload["model.orig.patch"] = patch
    if eval_script is not None:  # its own steps reset the tests and apply the test patch (envs.swebench_eval)
        payload["test.patch"] = ""
        payload["eval_script.sh"] = runner_script(eval_script, spec.base_commit, token)
    return _RunPlan(
        token, workdir, junit_path, record_path, audit_path, canary, "audit" in wanted, payload, eval_script
    )


def _command(spec: TaskSpec, plan: _RunPlan) -> str:
    """One command, the container's main process (no shell session, no `docker exec`): the files travel
    inside it (base64); the preparation's log and exit status, then the test output, then the result
    file and the audit log (base64) follow each other separated by markers with a random token (the
    patch cannot print them ahead of time); the tests run only when the repository is ready, and the
    command's exit status is theirs."""
    workdir = plan.workdir
    writes = " && ".join(
        f"echo {base64.b64encode(text.encode()).decode()} | base64 -d > {workdir}/{name}"
        for name, text in plan.payload.items()
    )
    hook = f"{install_audit_hook(workdir, plan.token)}; " if plan.audit else ""
    test_command = build_test_command(
        spec,
        plan.junit_path,
        plan.canary,
        f"bash {workdir}/eval_script.sh" if plan.eval_script else None,
    )
    return (
        f"mkdir -p {workdir} && {writes} && bash {workdir}/prepare.sh > {workdir}/prepare.log 2>&1; "
        f"__rc=$?; echo $__rc > {workdir}/prepare.rc; cat {workdir}/prepare.log; "
        f'echo "{plan.marker("prepared")} $__rc"; '
        f"if [ $__rc -eq 0 ]; then {hook}{test_command}; __rc=$?; "
        f"echo; echo '{plan.marker('junit')}'; base64 -w0 {plan.junit_path} 2>/dev/null; echo; "
        f"echo '{plan.marker('record')}'; {_emit(plan.record_path)}; echo; "
        f"echo '{plan.marker('audit')}'; base64 -w0 {plan.audit_path} 2>/dev/null; echo; fi; (exit $__rc)"
    )


def _emit(path: str | None) -> str:
    """Bash printing a file as base64, or ``-`` (not base64: "absent") when it does not exist."""
    if path is None:
        return "echo -n -"
    return f"if [ -e {path} ]; then base64 -w0 {path}; else echo -n -; fi"


def _sandbox_config(spec: TaskSpec, image: str, timeout: float, labels: dict[str, str]):
    from harness.sandbox import SandboxConfig

    return SandboxConfig.for_task(spec, image, timeout=timeout, extra_labels=labels)


def _run_in_sandbox(
    spec: TaskSpec,
    patch: str,
    *,
    client: docker.DockerClient | None,
    timeout: float,
    rebuild: bool,
    build_log_dir: Path | None,
    labels: dict[str, str],
    on_sandbox: Callable[[Any], None],
    release: Callable[[Any], None] | None,
    checks: bool | tuple[str, ...],
) -> dict[str, Any]:
    """Build (or reuse) the instance image, run the one command; returns the `InstanceRun` fields."""
    from harness.docker_env import get_client
    from harness.images import ensure_instance_image
    from harness.sandbox import Sandbox

    client = client or get_client()
    image = ensure_instance_image(spec, client=client, rebuild=rebuild, log_dir=build_log_dir)
    plan = _plan_run(spec, patch, checks)
    sb = Sandbox(_sandbox_config(spec, image, timeout, {"kind": "evaluate", **labels}), client=client)
    try:
        on_sandbox(sb)
        res = sb.run_once(_command(spec, plan), timeout=timeout)
        return _collect(spec, plan, res, sb, timeout)
    finally:
        (release or _close)(sb)


def _collect(spec: TaskSpec, plan: _RunPlan, res: Any, sb: Any, timeout: float) -> dict[str, Any]:
    """The `InstanceRun` fields from the command's result (files the output lacks are read from ``sb``)."""
    prep_out, prep_rc, test_out = _split_prepared(res.output, plan.marker("prepared"))
    test_out, audit_bytes = _split_marked(test_out, plan.marker("audit"))
    test_out, record = _split_marked(test_out, plan.marker("record"))
    test_out, junit = _split_marked(test_out, plan.marker("junit"))
    if prep_rc is None and (res.timed_out or res.limit):
        # killed before the preparation reported (or its report was cut): the files still tell
        prep_out, prep_rc = _read_prepared(sb, plan.workdir)
        test_out = res.output
    applied = _APPLIED_RE.search(prep_out)
    head = re.search(r"^>>>>> base (\S*)$", prep_out, re.M)
    fields: dict[str, Any] = {
        "started": True,
        "prepare_log": prep_out,
        "prepare_rc": prep_rc,
        "log": [prep_out.rstrip("\n")],
        "apply_method": applied.group(1) if applied else None,
        "base_head": head.group(1) if head else None,
        "base_dirty": re.findall(r"^>>>>> dirty (.*)$", prep_out, re.M),
        "timed_out": res.timed_out,
        "exit_code": res.exit_code,
        "limit": res.limit,
        "test_duration": res.duration,
    }
    if prep_rc != 0:
        return fields
    canary = plan.canary
    fields["canary"] = (
        canary if canary is not None and f">>>>> canary tests: {canary.file}" in prep_out else None
    )
    fields["test_command"] = spec.test_command()
    if plan.eval_script is not None:  # the graded output is its test command's; the rest goes to the log
        cut = split_output(test_out, plan.eval_script, plan.token)
        test_out = cut.test_output
        fields["test_command"] = plan.eval_script.test_command
        fields["log"] += cut.log
        if cut.error:
            fields["error"] = cut.error
    fields["test_output"] = test_out
    fields["log"] += [
        f">>>>> running: {spec.test_command()}  (limit {timeout:g} s)",
        f">>>>> test command: exit {res.exit_code}, {res.duration:.2f} s"
        + (", timed out" if res.timed_out else "")
        + (f", limit hit: {res.limit}" if res.limit else ""),
    ]
    if junit is None:  # not in the output (cut by the output limit, or killed at the time limit)
        junit = _read_optional(sb, plan.junit_path)
    fields["junit"] = junit or None  # b"": the file was not written
    if plan.record_path is not None:
        if record is None:
            record = _read_optional(sb, plan.record_path)
        # None: no Python process of the command loaded the hook (then the record is not required)
        fields["record"] = None if record is None else record.decode("utf-8", "replace")
    if plan.audit:
        if audit_bytes is None:
            audit_bytes = _read_optional(sb, plan.audit_path)
        fields["audit_log"] = (audit_bytes or b"").decode("utf-8", "replace")
    return fields


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
