"""What runs in an instance's sandbox before its tests: the candidate patch applied with fallbacks,
test files and compiled files reset to the base commit, the test patch, the canary module, the audit
hook; and the test command. Pure text builders (bash), no Docker: `harness.instance` runs them.

1. The candidate patch (CRLF normalised, newline-terminated) is tried with ``git apply``, then
   ``git apply --3way``, then ``patch --fuzz`` (dry run first, so it never half-applies), then, when
   normalising changed it, ``git apply`` of the original bytes. Every attempt is logged; files an
   attempt touched are restored before the next. Nothing applies -> exit 10 (``patch_failed``).
2. Files the test patch touches, and test files (tests/, test_*.py, *_test.py, conftest.py) and
   bytecode (``__pycache__/``, ``*.pyc``) the candidate touched, go back to the base commit (or away,
   when the candidate created them); then the test patch is applied (exit 11 when it does not). A patch
   cannot edit the tests that judge it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

from envs.spec import TESTBED, TaskSpec, is_test_path
from harness.tamper import Canary

APPLY_METHODS = ("git apply", "git apply --3way", "patch --fuzz", "git apply (original line endings)")
EXIT_PATCH_FAILED = 10
EXIT_TEST_PATCH_FAILED = 11
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
{canary}
exit 0
"""


def prepare_script(
    workdir: str,
    candidate: list[str],
    reset: list[str],
    testbed: str = TESTBED,
    canary: str | list[str] = "",
    canary_root: str | None = None,
) -> str:
    """Bash that applies ``$D/model.patch`` (with fallbacks), resets test files, applies ``$D/test.patch``
    and places the canary files ``$D/canary-<i>.py`` at the repository paths ``canary`` (in order), when
    ``canary_root`` (default: the first path's directory) exists and none of them does.

    Exit status: 0 ready, 10 the candidate patch does not apply, 11 the test patch does not apply.
    """
    return _PREPARE.format(
        testbed=shlex.quote(testbed),
        dir=shlex.quote(workdir),
        candidate=_bash_array(candidate),
        reset=_bash_array(reset),
        canary=_place_canaries(
            [canary] if isinstance(canary, str) and canary else list(canary or []), canary_root
        ),
        patch_failed=EXIT_PATCH_FAILED,
        test_patch_failed=EXIT_TEST_PATCH_FAILED,
    )


def _place_canaries(files: list[str], root: str | None) -> str:
    if not files:
        return ""
    q = shlex.quote
    root = root if root is not None else (files[0].rpartition("/")[0] or ".")
    absent = " && ".join(f"[ ! -e {q(f)} ]" for f in files)
    dirs = sorted({f.rpartition("/")[0] for f in files if "/" in f} - {root})
    steps = [f"mkdir -p {q(d)}" for d in dirs]
    steps += [f'cp "$D/canary-{i}.py" {q(f)}' for i, f in enumerate(files)]
    return (
        f"if [ -d {q(root)} ] && {absent}; then\n  {' && '.join(steps)} && "
        f"echo {q('>>>>> canary tests: ' + files[0])}\nfi"
    )


def build_test_command(
    spec: TaskSpec, junit_path: str, canary: Canary | str | None = None, command: str | None = None
) -> str:
    """The test command (``command``, default the task's), in a subshell, with the JUnit path exported
    (and given to pytest, with the canary module, when there is one, as one more file to run; other
    runners get the canary's argument appended to the task's own command)."""
    env = [f"SRL_JUNIT_XML={shlex.quote(junit_path)}"]
    replaced = command is not None
    command = command or spec.test_command()
    canary_file = canary if isinstance(canary, str) else canary.file if canary is not None else None
    if spec.log_parser == "pytest":
        opts = f"-rA --junitxml={junit_path} -o junit_family=xunit1" + (
            f" {canary_file}" if canary_file else ""
        )
        env.append(f"PYTEST_ADDOPTS={shlex.quote(opts)}")
    elif isinstance(canary, Canary) and canary.argument and not replaced:
        command = f"{command} {shlex.quote(canary.argument)}"
    return f"( cd {TESTBED} && export {' '.join(env)} && {command} )"


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
