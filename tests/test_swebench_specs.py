"""SWE-bench-family rows as published, and the benchmark's own spec (envs.swebench_specs), unit tier."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import shared_fixture

from envs import swebench_specs
from envs.sources import load_tasks, swebench_record_to_dict
from envs.spec import TaskSpec
from envs.swebench_eval import EvalScriptError
from harness.log_parsers import get_parser

DEBUG_ROWS = ("realformats", "swebench-tasks", "sweagent__debug_20240322.json")
SMITH_ROW = ("realformats", "swebench-tasks", "swesmith__pandas-dev__pandas.95280573.pr_53652.json")
MARSHMALLOW = ("repos", "marshmallow-code__marshmallow.tasks.json")


def _rows(*parts: str) -> list[dict]:
    data = json.loads(shared_fixture(*parts).read_text())
    return data if isinstance(data, list) else [data]


# ------------------------------------------------------------------------------------ the tables


def test_tables_come_from_swebench_with_every_python_repo() -> None:
    t = swebench_specs.tables()
    assert t["source"] == "swebench==4.1.0" and t["generated_by"].startswith("python -m envs.swebench_specs")
    repos = t["repos"]
    assert len(repos) == 20
    pythons: dict[str, int] = {}
    for entry in repos.values():
        for spec in entry["versions"].values():
            if spec.get("python"):
                pythons[spec["python"]] = pythons.get(spec["python"], 0) + 1
    # the counts the issue measured on swebench 4.1.0's tables
    assert pythons == {"3.9": 227, "3.5": 20, "3.6": 17, "3.10": 14, "3.11": 14, "3.8": 7, "3.7": 1}
    assert repos["django/django"]["log_parser"] == "django"
    assert repos["sympy/sympy"]["log_parser"] == "sympy"
    assert repos["psf/requests"]["log_parser"] == "pytest_options"
    assert repos["astropy/astropy"]["log_parser"] == "pytest_v2"


def test_generator_reproduces_the_shipped_file(tmp_path: Path) -> None:
    """The data file is what the kept script makes from the swebench 4.1.0 wheel (package index)."""
    out = tmp_path / "python.json"
    proc = subprocess.run(
        [sys.executable, "-m", "envs.swebench_specs.generate", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 and "pip download" in proc.stderr + proc.stdout:
        pytest.skip(f"the package index is not reachable: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text()) == swebench_specs.tables()


def test_parser_map_resolves_aliases() -> None:
    from envs.swebench_specs.generate import parser_map

    src = (
        "def parse_log_pytest(log, spec): pass\n"
        "parse_log_flask = parse_log_pytest\n"
        "MAP_REPO_TO_PARSER_PY = {'pallets/flask': parse_log_flask, 'x/y': parse_log_pytest}\n"
    )
    assert parser_map(src) == {"pallets/flask": "pytest", "x/y": "pytest"}


def test_read_tables_from_a_wheel(tmp_path: Path) -> None:
    from envs.swebench_specs.generate import read_tables

    wheel = tmp_path / "swebench-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(
            "swebench/harness/constants/python.py",
            'T = "pytest -rA"\nSPECS_X = {k: {"python": "3.9", "test_cmd": T} for k in ["1.10", "1.2"]}\n'
            'MAP_REPO_VERSION_TO_SPECS_PY = {"o/x": SPECS_X}\nMAP_REPO_TO_REQS_PATHS = {"o/x": ["r.txt"]}\n',
        )
        zf.writestr("swebench/harness/constants/__init__.py", 'NON_TEST_EXTS = [".json"]\n')
        zf.writestr(
            "swebench/harness/log_parsers/python.py",
            "def parse_log_pytest(l, s): pass\nMAP_REPO_TO_PARSER_PY = {'o/x': parse_log_pytest}\n",
        )
    t = read_tables(wheel)
    assert t["non_test_exts"] == [".json"]
    assert list(t["repos"]["o/x"]["versions"]) == ["1.2", "1.10"]
    assert t["repos"]["o/x"]["log_parser"] == "pytest" and t["repos"]["o/x"]["requirements_paths"] == [
        "r.txt"
    ]


# ------------------------------------------------------------------------------------ rows as published


def test_every_family_column_is_kept_in_metadata_without_rejecting_the_row(tmp_path: Path) -> None:
    base = _rows(*MARSHMALLOW)[0]
    extras = {
        "difficulty": "15 min - 1 hour",  # SWE-bench Verified
        "image_assets": {"test_patch": []},  # SWE-bench Multimodal
        "image": "swebench/sweb.eval.x86_64.marshmallow-code_1776_marshmallow-1867:latest",
        "eval_type": "pass_and_fail",
        "image_name": "jyangballin/swesmith.x86_64.x",  # SWE-smith
        "base_commit_with_tests": "0" * 40,  # SWE-agent
    }
    rows = [dict(base, **extras), dict(base, instance_id="m-2", my_column=1, other={"a": 1})]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = load_tasks(str(path))
    assert not res.errors and len(res.tasks) == 2
    t = res.get("marshmallow-code__marshmallow-1867")
    for key, value in extras.items():
        assert t.metadata[key] == value
    assert res.get("m-2").metadata["my_column"] == 1
    # one warning for the source, naming the unknown columns (the family's own columns are not listed)
    assert res.warnings == [f"{path}: columns that are not task fields kept in metadata: my_column, other"]


def test_newer_revision_rows_log_parser_column_wins() -> None:
    row = dict(_rows(*MARSHMALLOW)[0], log_parser="parse_log_pytest_v2")
    data = swebench_record_to_dict(row)
    spec = TaskSpec.model_validate(data)
    assert spec.log_parser == "pytest_v2" and get_parser(spec.log_parser)
    # an eval_script that is not SWE-bench's eval.sh is an error naming the row, never silently ignored
    with pytest.raises(EvalScriptError, match="eval_script of marshmallow-code__marshmallow-1867: no "):
        swebench_record_to_dict(dict(row, eval_script="#!/bin/bash\n"))


HEREDOC = "EOF_114329324912"
# The shape of SWE-bench's published eval.sh (make_eval_script_list_py): conda, exports, the test patch,
# the markers around the test command, the reset.
PUBLISHED_EVAL_SCRIPT = """\
#!/bin/bash
set -uxo pipefail
source /opt/miniconda3/bin/activate
conda activate testbed
cd /testbed
sed -i '/en_US.UTF-8/s/^# //g' /etc/locale.gen && locale-gen
export LANG=en_US.UTF-8
export LANGUAGE=en_US:en
export LC_ALL=en_US.UTF-8
git config --global --add safe.directory /testbed
cd /testbed
git status
git show
git -c core.fileMode=false diff 0123456789abcdef0123456789abcdef01234567
source /opt/miniconda3/bin/activate
conda activate testbed
python -m pip install -e .
git checkout 0123456789abcdef0123456789abcdef01234567 tests/queries/tests.py
git apply -v - <<'EOF_114329324912'
EOF_114329324912
: '>>>>> Start Test Output'
./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 queries.tests
: '>>>>> End Test Output'
git checkout 0123456789abcdef0123456789abcdef01234567 tests/queries/tests.py
"""


def test_published_eval_script_gives_the_test_command() -> None:
    row = next(r for r in _rows(*DEBUG_ROWS) if r["instance_id"] == "django__django-13251")
    script = PUBLISHED_EVAL_SCRIPT.replace(f"<<'{HEREDOC}'\n", f"<<'{HEREDOC}'\n{row['test_patch']}\n")
    t = TaskSpec.model_validate(swebench_record_to_dict(dict(row, eval_script=script)))
    assert t.metadata["eval_script"] == script
    assert t.test_cmd == (
        "export LANG=en_US.UTF-8; export LANGUAGE=en_US:en; export LC_ALL=en_US.UTF-8; "
        "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 queries.tests"
    )
    assert t.env.python == "3.6" and t.log_parser == "django"  # the rest still from the tables
    assert swebench_specs.eval_script_test_command("#!/bin/bash\npytest\n") is None


def test_swesmith_row_without_test_patch_runs_the_tests_fail_to_pass_names() -> None:
    res = load_tasks(str(shared_fixture(*SMITH_ROW)))
    assert not res.errors and not res.warnings
    t = res.tasks[0]
    assert t.metadata["image_name"] and not t.test_patch
    assert t.tests_to_run() and all(f.endswith(".py") for f in t.tests_to_run())
    assert set(t.tests_to_run()) <= {n.split("::")[0] for n in t.FAIL_TO_PASS + t.PASS_TO_PASS}


def test_prebuilt_image_names_of_each_family() -> None:
    from harness.images import prebuilt_names

    smith = load_tasks(str(shared_fixture(*SMITH_ROW))).tasks[0]
    assert prebuilt_names(smith)[0] == smith.metadata["image_name"]
    row = dict(_rows(*MARSHMALLOW)[0], image="swebench/sweb.eval.x86_64.own:v2")
    names = prebuilt_names(TaskSpec.model_validate(swebench_record_to_dict(row)))
    assert names == [
        "swebench/sweb.eval.x86_64.own:v2",
        "swebench/sweb.eval.x86_64.marshmallow-code_1776_marshmallow-1867:latest",
        "xingyaoww/sweb.eval.x86_64.marshmallow-code_s_marshmallow-1867:latest",
    ]


def test_swebench_lite_and_real_rows_load_with_their_spec() -> None:
    for parts in (("swe-bench", "swe-bench-lite-test.json"), ("swebench-real", "tasks.json")):
        res = load_tasks(str(shared_fixture(*parts)))
        assert not res.errors
        for t in res.tasks:
            assert t.metadata["spec"].startswith("swebench==4.1.0 "), t.instance_id
            assert t.env.python == swebench_specs.lookup(t.repo, t.metadata["version"])["python"]


# ------------------------------------------------------------------------------------ acceptance


def test_django_rows_run_django_runner_with_the_django_parser_and_the_spec_python() -> None:
    res = load_tasks(str(shared_fixture(*DEBUG_ROWS)))
    assert not res.errors
    django = [t for t in res.tasks if t.repo == "django/django"]
    assert len(django) == 4
    for t in django:
        spec = swebench_specs.lookup("django/django", t.metadata["version"])
        assert t.env.python == spec["python"]
        assert t.log_parser == "django"
        script = t.test_command()  # what run_instance runs (eval_script is gone: one grading path)
        line = next(ln for ln in script.splitlines() if "runtests.py" in ln)
        cmd = line.split("; ")[-1]
        assert cmd.startswith("./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 ")
        labels = shlex.split(cmd)[6:]
        # SWE-bench's directives: the test patch's files as dotted modules under tests/
        files = [f for f in t.test_files if f.endswith(".py")]
        assert labels == [f.removeprefix("tests/").removesuffix(".py").replace("/", ".") for f in files]
        assert "pytest" not in script
        assert any("tests/requirements/py3.txt" in c for c in t.env.install)
    by_version = {t.metadata["version"]: t.env.python for t in django}
    assert by_version == {"4.1": "3.9", "4.0": "3.8", "5.0": "3.11", "3.2": "3.6"}
    locale = next(t for t in django if t.metadata["version"] == "3.2")
    assert "locales" in locale.env.system_packages and "export LC_ALL=en_US.UTF-8" in locale.test_command()
    sk = next(t for t in res.tasks if t.repo == "scikit-learn/scikit-learn")
    assert sk.log_parser == "pytest_v2" and sk.test_command().startswith("pytest -rA sklearn/")


def test_marshmallow_row_gets_its_environment_from_the_spec(tmp_path: Path) -> None:
    from harness.images import install_requirements

    row = _rows(*MARSHMALLOW)[0]
    assert not {"env", "test_cmd", "log_parser"} & set(row)
    t = TaskSpec.model_validate(swebench_record_to_dict(row))
    assert t.metadata["version"] == "3.13" and t.env.python == "3.9"
    assert t.env.install == ["python -m pip install -e '.[dev]'"]
    assert t.test_command() == "pytest -rA tests/test_serialization.py"
    assert "pytest" in t.env.pip_packages
    # the host wheelhouse gets the project with its dev extra (simplejson is in marshmallow's dev/tests)
    (tmp_path / "setup.py").write_text("")
    assert install_requirements(t, tmp_path) == [f"{tmp_path}[dev]"]
    # a task file overrides any field; the rest still comes from the spec
    own = swebench_record_to_dict(
        dict(row, env={"pip_packages": ["pytest", "simplejson"]}, test_cmd="pytest -x")
    )
    t2 = TaskSpec.model_validate(own)
    assert t2.env.pip_packages == ["pytest", "simplejson"] and t2.test_cmd == "pytest -x"
    assert t2.env.python == "3.9" and t2.env.install == t.env.install


def test_requirement_files_are_read_for_the_host_download(tmp_path: Path) -> None:
    from harness.images import install_requirements

    row = next(r for r in _rows(*DEBUG_ROWS) if r["instance_id"] == "django__django-15136")
    t = TaskSpec.model_validate(swebench_record_to_dict(row))
    req = tmp_path / "tests" / "requirements"
    req.mkdir(parents=True)
    (req / "py3.txt").write_text("-e ..\nasgiref >= 3.4.1  # x\n# c\n-r extra.txt\n")
    (req / "extra.txt").write_text("tblib >= 1.5.0\n")
    assert install_requirements(t, tmp_path) == [str(tmp_path), "asgiref >= 3.4.1", "tblib >= 1.5.0"]


def test_conda_packages_become_pip_requirements() -> None:
    assert swebench_specs.conda_to_pip("numpy=1.19 'scipy==1.5.2' python=3.6 'pandas<2.0.0' cython") == [
        "numpy==1.19",
        "scipy==1.5.2",
        "pandas<2.0.0",
        "cython",
    ]


def test_unknown_repo_or_version_keeps_the_default_environment() -> None:
    row = dict(_rows(*MARSHMALLOW)[0], version="0.0.1")
    t = TaskSpec.model_validate(swebench_record_to_dict(row))
    assert t.env.python is None and t.test_cmd is None and t.log_parser == "pytest"
    assert "spec" not in t.metadata


# ------------------------------------------------------------------------------------ docker tier


def _without_files(patch: str, drop: set[str]) -> str:
    from unidiff import PatchSet

    return "".join(str(pf) for pf in PatchSet(patch) if pf.path not in drop)


def _evaluate(spec: TaskSpec, client):
    """(report, test output) of the gold patch's graded run."""
    from harness.evaluate import evaluate_instance

    outcome = evaluate_instance(spec, spec.patch, client=client)
    return outcome.report, outcome.files.get("test_output.txt", "")


@pytest.fixture(scope="module")
def marshmallow_registry_row() -> dict:
    """The plain SWE-bench row of marshmallow-1867 over marshmallow 3.13.0 from the package index (the
    row's release line): its base commit is the release's, its gold patch without the CHANGELOG hunk
    (the source distribution's changelog differs); no env fields."""
    from envs.pypi import sdist_repo

    row = dict(_rows(*MARSHMALLOW)[0])
    _repo, commit = sdist_repo("marshmallow", "3.13.0")
    row.update(repo_source="pypi:marshmallow==3.13.0", base_commit=commit)
    row["patch"] = _without_files(row["patch"], {"CHANGELOG.rst"})
    return row


@pytest.mark.docker
@pytest.mark.slow
def test_marshmallow_resolves_with_gold_through_the_spec(marshmallow_registry_row, docker_client, tmp_path):
    spec = TaskSpec.model_validate(swebench_record_to_dict(marshmallow_registry_row))
    assert spec.env.python == "3.9" and spec.metadata["spec"].endswith("marshmallow-code/marshmallow 3.13")
    report, out = _evaluate(spec, docker_client)
    assert report.resolved, out[-3000:]
    assert "platform linux -- Python 3.9." in out  # pytest's session header: the spec's interpreter


@pytest.mark.docker
@pytest.mark.slow
def test_marshmallow_with_the_spec_withheld_is_env_error(marshmallow_registry_row, docker_client, tmp_path):
    row = dict(marshmallow_registry_row, version="withheld")  # a version the tables do not know
    spec = TaskSpec.model_validate(swebench_record_to_dict(row))
    assert spec.env.python is None and "spec" not in spec.metadata
    report, _out = _evaluate(spec, docker_client)
    assert report.status == "env_error" and not report.resolved
    assert "simplejson" in (report.env_error or ""), report.env_error


def test_python_versions_map_to_the_debian_release_that_ships_them() -> None:
    from harness.base_image import PythonUnavailable, distro_for_python

    assert [distro_for_python(v) for v in (None, "3.9", "3.11", "3.13")] == [
        "bookworm",
        "bullseye",
        "bookworm",
        "trixie",
    ]
    with pytest.raises(PythonUnavailable) as exc:
        distro_for_python("3.6", [f"django__django-{n}" for n in range(10)])
    msg = str(exc.value)
    assert msg.startswith("Python 3.6 is needed by django__django-0, django__django-1")
    assert "and 2 more" in msg and "3.9 (bullseye)" in msg
    assert "--base-image IMAGE" in msg and "--image-source prebuilt" in msg and "online" in msg
