"""A row's published ``eval_script`` (SWE-bench's newer revisions), run as the benchmark defines it.

SWE-bench writes one ``eval.sh`` per instance (``make_eval_script_list_py`` in swebench 4.1.0; the
newer data set revisions ship it per row as ``eval_script``)::

    #!/bin/bash
    set -uxo pipefail
    source /opt/miniconda3/bin/activate          # env activation
    conda activate testbed
    cd /testbed
    <the spec's eval_commands: exports, locale setup>
    git config --global --add safe.directory /testbed
    git status / git show / git -c core.fileMode=false diff <base>   # informational
    <the spec's install, e.g. python -m pip install .>               # re-install after the patch
    git checkout <base> <test files>                                 # reset the tests
    git apply -v - <<'EOF_114329324912'                              # the test patch
    ...
    EOF_114329324912
    : '>>>>> Start Test Output'
    <test command>
    : '>>>>> End Test Output'
    git checkout <base> <test files>

:func:`parse_eval_script` cuts such a script into steps (a heredoc is part of its step), each with its
line number, and says what each is. A step that cannot work offline or outside conda (a download, a
``conda install``) is an `EvalScriptError` naming the row and the line, when the row is loaded.

How one runs (``harness.evaluate.run_instance`` runs :func:`runner_script` in place of the bare test
command, after the harness's own preparation and with its audit hook in place; see docs/tasks.md):

- the harness applies the candidate patch and resets the test files (and the test and compiled files the
  candidate touched) to the base commit, but leaves the test patch to the script's own step;
- every step runs in order in one bash (the script's ``set`` options without ``-x``/``-e``: as in
  SWE-bench a failing step does not stop the script; it is reported with its line); except:
  env activation runs where the image has conda (a prebuilt image) and is already done where the
  image's venv is on PATH; system setup (``apt-get``, ``locale-gen``, ``/etc/`` edits) needs root and is
  done when the env image is built (its packages go to ``env.system_packages``); the informational
  ``git`` commands keep the first 20,000 bytes of their output;
- a test-patch step that fails stops the run before the tests (the run's error names the row and line);
- only the output of the steps between the start and end markers is the graded test output, between
  markers with a per-run token; the test command's own exit status is the run's.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from trajectories.errors import SrlSweError

#: Bytes of an informational command's output kept in the log.
INFO_LIMIT = 20_000
#: Exit status of a run whose test-patch step failed (as the harness's own "test patch does not apply").
EXIT_TEST_PATCH = 11

_START_RE = re.compile(r"^(?::|echo)\s+['\"]?>>>>> Start Test Output['\"]?\s*$")
_END_RE = re.compile(r"^(?::|echo)\s+['\"]?>>>>> End Test Output['\"]?\s*$")
_HEREDOC_RE = re.compile(r"<<-?\s*(['\"]?)(?P<delim>[A-Za-z_][A-Za-z0-9_]*)\1")
_SET_RE = re.compile(r"^set\s+(-\S+(\s+-\S+|\s+pipefail)*)\s*$")
_ACTIVATE_RE = re.compile(r"^(?:source|\.)\s+(?P<path>\S*/activate)(?:\s+(?P<env>\S+))?\s*$")
_CONDA_ACTIVATE_RE = re.compile(r"^(?:conda|mamba|micromamba)\s+(?:activate(?:\s+\S+)?|deactivate)\s*$")
_CONDA_RE = re.compile(r"^(?:conda|mamba|micromamba)\s+(?P<sub>\S+)")
_SYSTEM_RE = re.compile(
    r"locale-gen|/etc/|\bapt-get\b|\bapt\s+install\b|\bdpkg-reconfigure\b|\bupdate-locale\b"
)
_APT_RE = re.compile(r"apt-get install(?: -y| --no-install-recommends| -q)*\s+(?P<pkgs>[^&|;]+)")
_INFO_RE = re.compile(r"^git\s+(?:-c\s+\S+\s+)*(?:status|show|diff|log)\b")
_CHECKOUT_RE = re.compile(r"^git\s+(?:-c\s+\S+\s+)*checkout\s+(?P<rev>[0-9a-fA-F]{7,40})\b")
_DIFF_BASE_RE = re.compile(r"^git\s+(?:-c\s+\S+\s+)*diff\s+(?P<rev>[0-9a-fA-F]{7,40})\s*$")
_APPLY_RE = re.compile(r"^(?:git\s+apply|patch)\b")
_PIP_RE = re.compile(r"^(?:\S*python\S*\s+-m\s+)?pip3?\s+install\b(?P<args>.*)$")
_INSTALL_RE = re.compile(r"^\S*python\S*\s+setup\.py\s+(?:install|develop|build_ext)\b")
_NETWORK_RE = re.compile(
    r"(?:^|[;&|]\s*)(?:wget|curl|git\s+(?:clone|fetch|pull|submodule\s+update)|pip3?\s+download|"
    r"npm\s+(?:install|ci)|yarn\b|go\s+get|cargo\s+install)\b"
)
# pip install options that take a value (the value is not a requirement)
_PIP_VALUE_OPTS = {
    "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-t", "--target", "-i", "--index-url",
    "--extra-index-url", "-f", "--find-links", "--prefix", "--root", "--config-settings", "-C",
    "--global-option", "--install-option", "--python-version", "--platform", "--src",
}  # fmt: skip

KINDS = ("options", "activate", "cd", "export", "system", "info", "reset", "test_patch", "install", "shell")


class EvalScriptError(SrlSweError, ValueError):
    """A row's ``eval_script`` cannot be run here; the message names the row, the line and why."""


@dataclass(frozen=True)
class Step:
    """One command of the script: its first line's number (1-based), its text (a heredoc's body
    included), and what it is (one of `KINDS`)."""

    line: int
    text: str
    kind: str

    @property
    def head(self) -> str:
        """The command's first line (without a heredoc's body)."""
        return self.text.split("\n", 1)[0]


@dataclass(frozen=True)
class EvalScript:
    """A parsed ``eval_script``: the steps before, between and after the test-output markers."""

    instance_id: str
    options: tuple[str, ...]
    pre: tuple[Step, ...]
    test: tuple[Step, ...]
    post: tuple[Step, ...]
    test_patch: str | None = None  # the heredoc body of its test-patch step
    base_commit: str | None = None  # the commit its reset / diff steps name
    system_packages: tuple[str, ...] = ()
    pip_requirements: tuple[str, ...] = field(default=())

    @property
    def test_command(self) -> str:
        return "\n".join(s.text for s in self.test)

    @property
    def exports(self) -> list[str]:
        return [s.text for s in self.pre if s.kind == "export"]


def _commands(script: str) -> list[tuple[int, str]]:
    """(first line number, command text) of every command: heredocs and backslash continuations
    joined; blank lines and comments (and the shebang) dropped."""
    lines = script.replace("\r\n", "\n").split("\n")
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        start, text = i + 1, lines[i]
        i += 1
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        while text.endswith("\\") and i < len(lines):
            text = text[:-1] + "\n" + lines[i]
            i += 1
        m = _HEREDOC_RE.search(text)
        if m:
            body = []
            while i < len(lines) and lines[i].rstrip() != m["delim"] and lines[i].strip() != m["delim"]:
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                raise ValueError(f"line {start}: heredoc {m['delim']} is never closed")
            i += 1
            text = "\n".join([text, *body, m["delim"]])
        out.append((start, text.strip() if "\n" not in text else text.lstrip()))
    return out


def _pip_requirements(args: str) -> list[str]:
    """Requirements named on a ``pip install`` line (local paths, files and options left out)."""
    try:
        words = shlex.split(args)
    except ValueError:
        return []
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
            continue
        if w in _PIP_VALUE_OPTS:
            skip = True
            continue
        if w.startswith("-") or w.startswith((".", "/", "~")) or "://" in w or w in ("&&", ";", "|"):
            continue
        out.append(w)
    return out


def _kind(text: str, where: str) -> str:
    head = text.split("\n", 1)[0].strip()
    if _NETWORK_RE.search(head):
        raise EvalScriptError(f"{where}: {head!r} downloads from the network; sandboxes run without one")
    if _SET_RE.match(head):
        return "options"
    if _ACTIVATE_RE.match(head) or _CONDA_ACTIVATE_RE.match(head):
        return "activate"
    m = _CONDA_RE.match(head)
    if m:
        raise EvalScriptError(
            f"{where}: {head!r} needs conda and a package channel ('conda {m['sub']}'), and neither is "
            "reachable here: put its packages in the task's env.pip_packages, or use a prebuilt image "
            "that has them (--image-source prebuilt)"
        )
    if _SYSTEM_RE.search(head):
        return "system"
    if head.startswith("cd ") or head == "cd":
        return "cd"
    if head.startswith("export "):
        return "export"
    if _INFO_RE.match(head):
        return "info"
    if _CHECKOUT_RE.match(head):
        return "reset"
    if _APPLY_RE.match(head) and "\n" in text:
        return "test_patch"
    if _PIP_RE.match(head) or _INSTALL_RE.match(head):
        if "://" in head:
            raise EvalScriptError(f"{where}: {head!r} installs from a URL; sandboxes run without a network")
        return "install"
    return "shell"


def parse_eval_script(script: Any, instance_id: str) -> EvalScript:
    """The steps of `script` (a row's ``eval_script``); `EvalScriptError` naming `instance_id` and the
    line when it is not one (no test-output markers) or a step cannot work here."""
    name = f"eval_script of {instance_id}"
    if not isinstance(script, str) or not script.strip():
        raise EvalScriptError(f"{name}: expected the text of a bash script, got {type(script).__name__}")
    try:
        commands = _commands(script)
    except ValueError as exc:
        raise EvalScriptError(f"{name}, {exc}") from None
    options: list[str] = []
    pre: list[Step] = []
    test: list[Step] = []
    post: list[Step] = []
    region = pre
    started = ended = False
    for line, text in commands:
        head = text.split("\n", 1)[0].strip()
        if head.startswith("#!"):
            continue
        if _START_RE.match(head):
            if started:
                raise EvalScriptError(f"{name}, line {line}: a second '>>>>> Start Test Output' marker")
            started, region = True, test
            continue
        if _END_RE.match(head):
            if not started or ended:
                raise EvalScriptError(f"{name}, line {line}: '>>>>> End Test Output' without a start marker")
            ended, region = True, post
            continue
        kind = "shell" if region is test else _kind(text, f"{name}, line {line}")
        if kind == "options":
            options.append(head)
            continue
        region.append(Step(line, text, kind))
    if not started or not ended:
        raise EvalScriptError(
            f"{name}: no ': '>>>>> Start Test Output'' / ': '>>>>> End Test Output'' markers around a "
            "test command (expected SWE-bench's eval.sh)"
        )
    if not test:
        raise EvalScriptError(f"{name}: nothing between the test-output markers")
    patches = [s for s in pre if s.kind == "test_patch"]
    test_patch = None
    if patches:
        body = patches[-1].text.split("\n")[1:-1]
        test_patch = "\n".join(body).rstrip("\n") + "\n" if any(b.strip() for b in body) else ""
    base = None
    for s in [*pre, *post]:
        m = _CHECKOUT_RE.match(s.head) or _DIFF_BASE_RE.match(s.head)
        if m:
            base = m["rev"].lower()
            break
    system: list[str] = []
    pip: list[str] = []
    for s in pre:
        if s.kind == "system":
            for m in _APT_RE.finditer(s.head):
                system += [p for p in m["pkgs"].split() if not p.startswith("-")]
            if "locale" in s.head:
                system.append("locales")
        elif s.kind == "install":
            m = _PIP_RE.match(s.head)
            if m:
                pip += _pip_requirements(m["args"])
    return EvalScript(
        instance_id=instance_id,
        options=tuple(options),
        pre=tuple(pre),
        test=tuple(test),
        post=tuple(post),
        test_patch=test_patch,
        base_commit=base,
        system_packages=tuple(sorted(set(system))),
        pip_requirements=tuple(dict.fromkeys(pip)),
    )


def eval_script_of(spec: Any) -> EvalScript | None:
    """The parsed ``eval_script`` of a `TaskSpec` (its row's column, kept in ``metadata``), or None."""
    script = (getattr(spec, "metadata", None) or {}).get("eval_script")
    if script is None:
        return None
    return parse_eval_script(script, spec.instance_id)


# ------------------------------------------------------------------------------------------ running


def _say(text: str) -> str:
    return f"printf '%s\\n' {shlex.quote(text)}"


def _shell_options(options: tuple[str, ...]) -> str:
    """The script's ``set`` options without ``-x`` (our step lines say what runs) and ``-e`` (a failing
    step is reported, as SWE-bench's scripts keep going): ``set -uxo pipefail`` -> ``set -u -o pipefail``."""
    flags: list[str] = []
    named: list[str] = []
    for opt in options:
        words = opt.split()[1:]
        i = 0
        while i < len(words):
            w = words[i]
            if w.startswith("-") and len(w) > 1:
                letters = w[1:]
                if "o" in letters and i + 1 < len(words):  # -o NAME (also inside -uxo NAME)
                    i += 1
                    if words[i] not in ("errexit", "xtrace"):
                        named.append(words[i])
                flags += [c for c in letters if c not in "oxe" and c not in flags]
            i += 1
    out = (["-" + "".join(flags)] if flags else []) + [f"-o {n}" for n in dict.fromkeys(named)]
    return f"set {' '.join(out)}" if out else ""


def _step(step: Step, token: str, base_from: str | None, base_to: str) -> str:
    text = step.text
    if base_from and base_from != base_to and step.kind in ("reset", "info"):
        text = text.replace(base_from, base_to)
    where = f"line {step.line}"
    say = _say(f">>>>> eval_script {where}: {step.head}")
    failed = f'echo ">>>>> eval_script {token} failed {step.line} exit $__srl_rc"'
    if step.kind == "activate":
        m = _ACTIVATE_RE.match(step.head)
        probe = f"[ -f {shlex.quote(m['path'])} ]" if m else "command -v conda >/dev/null 2>&1"
        body = (
            f"if {probe}; then {text}\nelse "
            + _say("      (no conda in this image: its venv is active already)")
            + "; fi"
        )
    elif step.kind == "system":
        body = _say("      (system setup: done when the env image was built)")
    elif step.kind == "info":
        body = (
            f'__srl_t=$(mktemp); {{ {text}\n}} >"$__srl_t" 2>&1; __srl_rc=$?; head -c {INFO_LIMIT} "$__srl_t"; '
            f'__srl_n=$(wc -c <"$__srl_t"); [ "$__srl_n" -le {INFO_LIMIT} ] || '
            f'echo; [ "$__srl_n" -le {INFO_LIMIT} ] || echo "      ({INFO_LIMIT} of $__srl_n bytes shown)"; '
            f'rm -f "$__srl_t"; (exit $__srl_rc)'
        )
    else:
        body = text
    out = f"{say}\n{body}\n__srl_rc=$?\n[ $__srl_rc -eq 0 ] || {failed}"
    if step.kind == "test_patch":
        out += f'\n[ $__srl_rc -eq 0 ] || {{ echo ">>>>> eval_script {token} fatal {step.line}"; exit {EXIT_TEST_PATCH}; }}'
    return out


def runner_script(plan: EvalScript, base_commit: str, token: str) -> str:
    """Bash that runs `plan`'s steps in /testbed: the test output between markers with `token`, the test
    command's exit status as its own (see the module docstring)."""
    parts = [
        f"# the eval_script of {plan.instance_id}, as srl-swe runs it (envs/swebench_eval.py)",
        _shell_options(plan.options),
        "__srl_rc=0",
    ]
    if plan.base_commit and plan.base_commit != base_commit:
        parts.append(_say(f">>>>> eval_script names base {plan.base_commit}; this task's is {base_commit}"))
    parts += [_step(s, token, plan.base_commit, base_commit) for s in plan.pre]
    parts.append(f"echo '>>>>> eval_script {token} tests start'")
    parts += [s.text for s in plan.test]
    parts.append("__srl_test_rc=$?")
    parts.append(f'echo; echo ">>>>> eval_script {token} tests end $__srl_test_rc"')
    parts += [_step(s, token, plan.base_commit, base_commit) for s in plan.post]
    parts.append("exit $__srl_test_rc")
    return "\n".join(p for p in parts if p) + "\n"


@dataclass
class EvalOutput:
    """A run's output cut apart: the graded test output, the other steps' log, and the error that
    stopped it (None when the tests ran)."""

    test_output: str
    log: list[str]
    error: str | None = None


def _cap(text: str, limit: int = 4 * INFO_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n[...]\n" + text[-limit // 2 :]


def split_output(output: str, plan: EvalScript, token: str) -> EvalOutput:
    """`output` of `runner_script(plan, ..., token)`: the text between its test markers is the test
    output; the rest goes to the log, with a line per failed step naming the row and the line."""
    start = f">>>>> eval_script {token} tests start\n"
    end_re = re.compile(rf"\n?>>>>> eval_script {re.escape(token)} tests end (\d+)\n?")
    head, found, rest = output.partition(start)
    steps = {s.line: s for s in (*plan.pre, *plan.post)}
    log = []
    if not found:  # stopped before the tests (a fatal step, a timeout)
        head, rest = output, ""
    ends = list(end_re.finditer(rest))
    test_out, tail = (rest[: ends[-1].start()], rest[ends[-1].end() :]) if ends else (rest, "")
    failed_re = re.compile(rf"^>>>>> eval_script {re.escape(token)} failed (\d+) exit (\d+)$", re.M)
    for part in (head, tail):
        for m in failed_re.finditer(part):
            s = steps.get(int(m[1]))
            log.append(
                f">>>>> eval_script of {plan.instance_id}, line {m[1]} exited {m[2]}: {s.head if s else '?'}"
            )
    log.insert(0, _cap(failed_re.sub("", head)).rstrip("\n"))
    if tail.strip():
        log.append(_cap(failed_re.sub("", tail)).rstrip("\n"))
    error = None
    fatal = re.search(rf"^>>>>> eval_script {re.escape(token)} fatal (\d+)$", head, re.M)
    if fatal and not found:
        s = steps.get(int(fatal[1]))
        error = (
            f"eval_script of {plan.instance_id}, line {fatal[1]}: the test patch does not apply "
            f"({s.head if s else '?'}); the tests did not run"
        )
    return EvalOutput(test_out, [entry for entry in log if entry], error)
