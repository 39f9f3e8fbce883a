"""A row's ``eval_script`` run as SWE-bench defines it (envs.swebench_eval), and a SWE-bench-form row over a
requests source distribution from the package index graded with its spec (Python 3.9, packages, parser).

The scripts are literal text in the shape swebench 4.1.0's ``make_eval_script_list_py`` writes
(``"\\n".join(["#!/bin/bash", "set -uxo pipefail", *commands]) + "\\n"``, the test patch in a heredoc
delimited by ``EOF_114329324912`` with the patch followed by a newline): no fixture row carries one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from envs.sources import load_tasks, swebench_record_to_dict
from envs.spec import TaskSpec
from envs.swebench_eval import EvalScriptError, parse_eval_script, runner_script, split_output

HEREDOC = "EOF_114329324912"


def eval_sh(
    base: str,
    test_files: list[str],
    test_patch: str,
    test_command: str,
    install: str | None = "python -m pip install .",
    eval_commands: tuple[str, ...] = (),
    repo_directory: str = "/testbed",
) -> str:
    """An ``eval.sh`` in the exact layout of swebench 4.1.0's ``make_eval_script_list_py``."""
    reset = f"git checkout {base} {' '.join(test_files)}"
    cmds = [
        "source /opt/miniconda3/bin/activate",
        "conda activate testbed",
        f"cd {repo_directory}",
        *eval_commands,
        f"git config --global --add safe.directory {repo_directory}",
        f"cd {repo_directory}",
        "git status",
        "git show",
        f"git -c core.fileMode=false diff {base}",
        "source /opt/miniconda3/bin/activate",
        "conda activate testbed",
        *([install] if install else []),
        reset,
        f"git apply -v - <<'{HEREDOC}'\n{test_patch}\n{HEREDOC}",
        ": '>>>>> Start Test Output'",
        test_command,
        ": '>>>>> End Test Output'",
        reset,
    ]
    return "\n".join(["#!/bin/bash", "set -uxo pipefail", *cmds]) + "\n"


# A test patch of our own in the layout git writes (the docker tests use requests' real one, fetched)
REQUESTS_TEST_PATCH = """\
diff --git a/tests/test_utils.py b/tests/test_utils.py
--- a/tests/test_utils.py
+++ b/tests/test_utils.py
@@ -1,3 +1,7 @@
 def test_scheme():
     assert True
\x20
+
+def test_scheme_keeps_auth():
+    assert "user@host"
+
"""
BASE = "0123456789abcdef0123456789abcdef01234567"
SCRIPT = eval_sh(BASE, ["tests/test_utils.py"], REQUESTS_TEST_PATCH, "pytest -rA tests/test_utils.py")


# ------------------------------------------------------------------------------------ parsing


def test_published_script_is_cut_into_steps_with_their_lines() -> None:
    plan = parse_eval_script(SCRIPT, "psf__requests-6028")
    assert plan.options == ("set -uxo pipefail",)
    kinds = [(s.line, s.kind) for s in plan.pre]
    assert kinds == [
        (3, "activate"),
        (4, "activate"),
        (5, "cd"),
        (6, "shell"),  # git config --global --add safe.directory
        (7, "cd"),
        (8, "info"),
        (9, "info"),
        (10, "info"),
        (11, "activate"),
        (12, "activate"),
        (13, "install"),
        (14, "reset"),
        (15, "test_patch"),
    ]
    at = SCRIPT.splitlines().index("pytest -rA tests/test_utils.py") + 1
    assert plan.test_command == "pytest -rA tests/test_utils.py" and plan.test[0].line == at
    assert [(s.line, s.kind) for s in plan.post] == [(at + 2, "reset")]
    assert plan.test_patch == REQUESTS_TEST_PATCH  # the heredoc's body, as the row's test_patch
    assert plan.base_commit == BASE and plan.pip_requirements == ()
    runner = runner_script(plan, BASE, "tok")
    assert "\nset -u -o pipefail\n" in runner and "set -x" not in runner  # its options, without -x (and -e)


def test_eval_commands_become_exports_and_build_time_system_setup() -> None:
    script = eval_sh(
        BASE,
        ["tests/queries/tests.py"],
        "",
        "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 queries.tests",
        install="python -m pip install -e . pytest-mock==3.12.0",
        eval_commands=(
            "sed -i '/en_US.UTF-8/s/^# //g' /etc/locale.gen && locale-gen",
            "export LANG=en_US.UTF-8",
        ),
    )
    plan = parse_eval_script(script, "django__django-13251")
    assert [s.kind for s in plan.pre][3:5] == ["system", "export"]
    assert plan.system_packages == ("locales",) and plan.exports == ["export LANG=en_US.UTF-8"]
    assert plan.pip_requirements == ("pytest-mock==3.12.0",)  # named: downloaded into the wheelhouse
    assert plan.test_patch == ""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "conda install -y numpy=1.19",
            r"line 6: 'conda install -y numpy=1.19' needs conda and a package channel",
        ),
        ("wget https://example.org/data.tgz", r"line 6: 'wget https://example.org/data.tgz' downloads"),
        ("git fetch origin", r"line 6: 'git fetch origin' downloads from the network"),
        (
            "pip install git+https://example.org/x.git",
            r"line 6: 'pip install git\+https://example.org/x.git' installs",
        ),
    ],
)
def test_steps_that_cannot_work_offline_name_the_row_and_line(line: str, expected: str) -> None:
    script = eval_sh(BASE, ["t.py"], "", "pytest", eval_commands=(line,))
    with pytest.raises(EvalScriptError, match=r"^eval_script of row-1, " + expected):
        parse_eval_script(script, "row-1")


def test_a_script_without_test_markers_is_an_error() -> None:
    with pytest.raises(EvalScriptError, match="row-2: no .*Start Test Output"):
        parse_eval_script("#!/bin/bash\nset -uxo pipefail\npytest\n", "row-2")
    with pytest.raises(EvalScriptError, match="of row-3, line 1: heredoc EOF_1 is never closed"):
        parse_eval_script("git apply - <<'EOF_1'\nx\n", "row-3")


# ------------------------------------------------------------------------------------ rows


def _row(**extra) -> dict:
    return {
        "repo": "psf/requests",
        "instance_id": "psf__requests-6028",
        "base_commit": BASE,
        "version": "2.27",
        "test_patch": REQUESTS_TEST_PATCH,
        "patch": "",
        "problem_statement": "proxy auth dropped",
        "FAIL_TO_PASS": "[]",
        "PASS_TO_PASS": "[]",
        **extra,
    }


def test_row_with_eval_script_takes_its_test_command_and_keeps_the_spec() -> None:
    spec = TaskSpec.model_validate(
        swebench_record_to_dict(
            _row(eval_script=SCRIPT, log_parser="parse_log_pytest_options", eval_type="pass_and_fail")
        )
    )
    assert spec.test_command() == "pytest -rA tests/test_utils.py" and spec.log_parser == "pytest_options"
    assert spec.env.python == "3.9" and spec.env.install == ["python -m pip install ."]
    assert spec.metadata["eval_script"] == SCRIPT and spec.metadata["eval_type"] == "pass_and_fail"
    # a row without a test_patch column gets the script's
    bare = TaskSpec.model_validate(swebench_record_to_dict(_row(eval_script=SCRIPT, test_patch="")))
    assert bare.test_patch == REQUESTS_TEST_PATCH and bare.test_files == ["tests/test_utils.py"]


def test_rows_whose_script_cannot_run_are_load_errors_naming_row_and_line(tmp_path: Path) -> None:
    other = REQUESTS_TEST_PATCH.replace("user@host", "someone@host")
    rows = [
        _row(instance_id="a-1", eval_script=eval_sh(BASE, ["tests/test_utils.py"], other, "pytest")),
        _row(
            instance_id="a-2", eval_script=SCRIPT.replace("conda activate testbed\ncd", "conda install x\ncd")
        ),
        _row(instance_id="a-3", eval_script=SCRIPT),
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = load_tasks(str(path))
    assert [t.instance_id for t in res.tasks] == ["a-3"]
    errors = {e.instance_id: e for e in res.errors}
    assert errors["a-1"].field == "eval_script"
    assert "eval_script of a-1, line 15: its test patch is not the row's test_patch" in str(errors["a-1"])
    assert "eval_script of a-2, line 4: 'conda install x' needs conda" in str(errors["a-2"])


def test_the_instance_run_leaves_the_test_patch_to_the_script_and_runs_it_whole() -> None:
    """The harness resets the test files but does not apply the test patch itself: the script's own reset
    and heredoc do (a test file the patch creates would otherwise exist when the script applies it)."""
    from harness.instance import _command, _plan_run

    spec = TaskSpec.model_validate(swebench_record_to_dict(_row(eval_script=SCRIPT)))
    plan = _plan_run(spec, "", True)
    assert plan.payload["test.patch"] == "" and plan.eval_script is not None
    assert "tests/test_utils.py" in plan.payload["prepare.sh"]  # still reset to the base commit first
    assert plan.payload["eval_script.sh"] == runner_script(plan.eval_script, BASE, plan.token)
    command = _command(spec, plan)
    assert (
        f"bash {plan.workdir}/eval_script.sh" in command and "pytest -rA tests/test_utils.py )" not in command
    )
    plain = _plan_run(TaskSpec.model_validate(swebench_record_to_dict(_row())), "", True)
    assert plain.payload["test.patch"] == REQUESTS_TEST_PATCH and "eval_script.sh" not in plain.payload


def test_task_show_scripts_prints_the_script_as_it_runs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from srl_agent.cli import app

    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(_row(eval_script=SCRIPT)) + "\n")
    res = CliRunner().invoke(app, ["task", "show", "psf__requests-6028", "--tasks", str(rows), "--scripts"])
    assert res.exit_code == 0, res.output
    assert "bash /tmp/srl-eval-TOKEN/eval_script.sh" in res.output
    assert "# ---- evaluation: eval_script.sh" in res.output
    assert "'>>>>> eval_script line 13: python -m pip install .'" in res.output


# ------------------------------------------------------------------------------------ running (bash, no docker)

_CALC = "def add(a, b):\n    return a - b\n"
_TEST = "from calc import add\n\n\ndef test_one():\n    assert add(0, 0) == 0\n"
_TEST_PATCH = """\
diff --git a/tests/test_calc.py b/tests/test_calc.py
--- a/tests/test_calc.py
+++ b/tests/test_calc.py
@@ -3,3 +3,7 @@ from calc import add
\x20
 def test_one():
     assert add(0, 0) == 0
+
+
+def test_add():
+    assert add(2, 3) == 5
diff --git a/tests/test_new.py b/tests/test_new.py
new file mode 100644
--- /dev/null
+++ b/tests/test_new.py
@@ -0,0 +1,2 @@
+def test_new():
+    print("PASSED tests/test_calc.py::test_forged")
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "calc.py").write_text(_CALC)
    (repo / "tests" / "test_calc.py").write_text(_TEST)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    return repo


def _run(repo: Path, script: str, token: str = "tok123") -> tuple[int, str]:
    base = _git(repo, "rev-parse", "HEAD").strip()
    plan = parse_eval_script(script, "calc-1")
    runner = repo.parent / "runner.sh"
    runner.write_text(runner_script(plan, base, token))
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(repo.parent)}
    proc = subprocess.run(["bash", str(runner)], cwd=repo, capture_output=True, text=True, env=env)
    return proc.returncode, proc.stdout + proc.stderr


def test_runner_runs_every_step_and_grades_only_the_test_output(repo: Path) -> None:
    base = _git(repo, "rev-parse", "HEAD").strip()
    pytest_cmd = f"{sys.executable} -m pytest -rA -p no:cacheprovider tests/test_calc.py tests/test_new.py"
    script = eval_sh(
        base,
        ["tests/test_calc.py", "tests/test_new.py"],
        _TEST_PATCH,
        pytest_cmd,
        install=None,
        eval_commands=("export SRL_X=from-eval-commands",),
        repo_directory=str(repo),
    )
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")  # the candidate's fix
    rc, out = _run(repo, script)
    plan = parse_eval_script(script, "calc-1")
    cut = split_output(out, plan, "tok123")
    assert rc == 0 and cut.error is None, out[-2000:]
    assert "3 passed" in cut.test_output and "PASSED tests/test_calc.py::test_add" in cut.test_output
    # the informational steps (the diff with its forged-looking line) are in the log, not the test output
    assert (
        "git -c core.fileMode=false diff" not in cut.test_output
        and "(no conda in this image" not in cut.test_output
    )
    log = "\n".join(cut.log)
    assert "+    return a + b" in log and "(no conda in this image: its venv is active already)" in log
    # the last reset of a file the test patch creates fails, as in SWE-bench, and is reported with its line
    assert f">>>>> eval_script of calc-1, line {plan.post[0].line} exited 1: git checkout {base}" in log
    # git refuses the whole checkout when one path is unknown at the base: the tree stays as tested
    assert "def test_add" in (repo / "tests" / "test_calc.py").read_text()

    (repo / "calc.py").write_text(_CALC)  # the harness's preparation resets the test files before a run
    (repo / "tests" / "test_new.py").unlink()
    _git(repo, "checkout", "-q", "HEAD", "--", "tests/test_calc.py")
    rc, out = _run(repo, script)
    cut = split_output(out, plan, "tok123")
    assert (
        rc == 1 and "FAILED tests/test_calc.py::test_add" in cut.test_output
    )  # its exit status is the tests'


def test_a_test_patch_that_does_not_apply_stops_before_the_tests(repo: Path) -> None:
    base = _git(repo, "rev-parse", "HEAD").strip()
    broken = _TEST_PATCH.replace("assert add(0, 0) == 0\n+", "assert add(1, 1) == 0\n+")
    script = eval_sh(
        base, ["tests/test_calc.py"], broken, "echo never", install=None, repo_directory=str(repo)
    )
    rc, out = _run(repo, script)
    plan = parse_eval_script(script, "calc-1")
    cut = split_output(out, plan, "tok123")
    assert rc == 11 and "never" not in cut.test_output
    assert cut.error == (
        f"eval_script of calc-1, line {plan.pre[-1].line}: the test patch does not apply "
        "(git apply -v - <<'EOF_114329324912'); the tests did not run"
    )


# ------------------------------------------------------------------------------------ docker tier

F2P = [
    "tests/test_utils.py::test_prepend_scheme_if_needed[http://user:pass@example.com/path?query-"
    "http://user:pass@example.com/path?query]",
    "tests/test_utils.py::test_prepend_scheme_if_needed[http://user@example.com/path?query-"
    "http://user@example.com/path?query]",
]
P2P = [
    "tests/test_utils.py::test_prepend_scheme_if_needed[example.com/path-http://example.com/path]",
    "tests/test_utils.py::test_prepend_scheme_if_needed[//example.com/path-http://example.com/path]",
    "tests/test_utils.py::test_prepend_scheme_if_needed[example.com:80-http://example.com:80]",
    "tests/test_utils.py::TestSuperLen::test_super_len_with_no__len__",
    "tests/test_utils.py::TestIsIPv4Address::test_invalid[8.8.8.8.8]",
    "tests/test_utils.py::test_iter_slices[Test-4]",
    "tests/test_utils.py::test_should_bypass_proxies[http://192.168.0.1/-True]",
    "tests/test_utils.py::TestGuessJSONUTF::test_guess_by_bom[utf-16-le-utf-16]",
]


@pytest.fixture(scope="module")
def requests_row() -> dict:
    """SWE-bench's psf__requests-6028 in its published form (version 2.27: Python 3.9, ``pytest``,
    ``python -m pip install .``, the ``pytest_options`` parser), over requests 2.27.0 from the package
    index: the gold patch and the test patch are the real 2.27.0 -> 2.27.1 change (a release recipe)."""
    from envs.recipes import materialize, release_recipe

    out = materialize(
        release_recipe("requests", "2.27.0", "2.27.1", ["requests/utils.py"], ["tests/test_utils.py"])
    )
    assert "'http://user@example.com/path?query'" in out["test_patch"]
    return {
        **_row(),
        **out,
        "problem_statement": "Proxy authentication bug: the auth part of a proxy URL is dropped (2.27.0).",
        "FAIL_TO_PASS": json.dumps(F2P),
        "PASS_TO_PASS": json.dumps(P2P),
    }


def _grade(spec: TaskSpec, patch: str, client):
    from harness.grading import grade
    from harness.instance import run_instance

    run = run_instance(spec, patch, client=client, run_empty=True)
    return grade(spec, run), run


@pytest.mark.docker
@pytest.mark.slow
def test_requests_sdist_row_resolves_with_gold_through_its_spec(requests_row, docker_client) -> None:
    spec = TaskSpec.model_validate(swebench_record_to_dict(requests_row))
    assert spec.env.python == "3.9" and spec.log_parser == "pytest_options"
    assert (
        spec.env.install == ["python -m pip install ."]
        and spec.test_command() == "pytest -rA tests/test_utils.py"
    )
    report, run = _grade(spec, spec.patch, docker_client)
    assert report.resolved, run.test_output[-3000:]
    assert "platform linux -- Python 3.9." in run.test_output  # the spec's interpreter
    empty, run = _grade(spec, "", docker_client)
    assert empty.status == "unresolved" and not empty.resolved, run.test_output[-3000:]
    assert sorted(empty.tests_status.FAIL_TO_PASS.failure) == sorted(F2P)


@pytest.mark.docker
@pytest.mark.slow
def test_row_with_eval_script_runs_it_whole(requests_row, docker_client) -> None:
    script = eval_sh(
        requests_row["base_commit"],
        ["tests/test_utils.py"],
        requests_row["test_patch"],
        "pytest -rA tests/test_utils.py",
    )
    row = dict(
        requests_row, eval_script=script, log_parser="parse_log_pytest_options", eval_type="pass_and_fail"
    )
    spec = TaskSpec.model_validate(swebench_record_to_dict(row))
    report, run = _grade(spec, spec.patch, docker_client)
    assert report.resolved and run.error is None, run.test_output[-3000:]
    log = "\n".join(run.log)
    # its steps ran, in order, each named with its line: the re-install after the patch, the test reset and
    # the test patch from its heredoc; the graded output is the test command's only
    for line, step in ((13, "python -m pip install ."), (14, "git checkout"), (15, "git apply -v -")):
        assert f">>>>> eval_script line {line}: {step}" in log
    assert (
        "Successfully installed requests-2.27.0" in log and "Applied patch tests/test_utils.py cleanly" in log
    )
    assert "exited" not in log  # every step worked (offline: pip from the image's wheelhouse)
    assert run.test_output.lstrip().startswith("=") and "Successfully installed" not in run.test_output
    assert run.test_command == "pytest -rA tests/test_utils.py"
    empty, run = _grade(spec, "", docker_client)
    assert not empty.resolved and empty.status == "unresolved", run.test_output[-3000:]
