"""Env and instance images: real builds, cache hits, change detection, hidden future commits (docker)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from envs.sources import load_tasks
from envs.spec import EnvSpec
from harness.docker_env import LABEL
from harness.images import (
    ImageBuildError,
    ensure_instance_image,
    image_tags,
    prune_images,
)
from harness.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.docker

TASK = "cachetools-5.5.2"  # release-mined from the package index: 5.5.1 -> 5.5.2


@pytest.fixture(scope="module")
def spec():
    return load_tasks().get(TASK)


@pytest.fixture(scope="module")
def built(spec, docker_client, base_image, tmp_path_factory) -> str:
    return ensure_instance_image(spec, client=docker_client, log_dir=tmp_path_factory.mktemp("logs"))


def test_instance_image_is_labelled_and_cached(spec, built, docker_client, tmp_path):
    img = docker_client.images.get(built)
    assert img.labels[LABEL] == "1" and img.labels[f"{LABEL}.kind"] == "instance"
    assert img.labels[f"{LABEL}.instance_id"] == TASK
    env_tag, inst_tag = image_tags(spec, docker_client)
    assert inst_tag == built and docker_client.images.get(env_tag).labels[f"{LABEL}.kind"] == "env"
    t0 = time.monotonic()
    assert ensure_instance_image(spec, client=docker_client, log_dir=tmp_path) == built
    assert time.monotonic() - t0 < 1.0  # cache hit: no export, no pip, no build
    assert not (tmp_path / "instance.log").exists()


def test_changed_recipe_gets_a_new_tag(spec, built, docker_client):
    env_a, inst_a = image_tags(spec, docker_client)
    other_install = spec.model_copy(update={"env": EnvSpec(install=["pip install ."])})
    env_b, inst_b = image_tags(other_install, docker_client)
    assert env_b == env_a and inst_b != inst_a
    other_env = spec.model_copy(update={"env": EnvSpec(pip_packages=["pytest", "pytz"])})
    env_c, inst_c = image_tags(other_env, docker_client)
    assert env_c != env_a and inst_c != inst_a
    # provenance does not change the keys
    same = spec.model_copy(update={"problem_statement": "x", "metadata": {"a": 1}})
    assert image_tags(same, docker_client) == (env_a, inst_a)


def test_instance_repo_hides_everything_after_base(spec, built, docker_client):
    from envs.pypi import sdist_repo

    fix = sdist_repo(spec.recipe["package"], spec.recipe["to"])[1]  # the fix release: in the same cache repo
    with Sandbox(SandboxConfig(image=built, workdir="/testbed", timeout=60), client=docker_client) as sb:
        head = sb.exec("git rev-parse HEAD && git status --porcelain && echo END")
        assert head.output.split() == [spec.base_commit, "END"]
        assert sb.exec(f"git cat-file -e {fix}").exit_code != 0
        assert sb.exec(f"git show {fix}").exit_code != 0
        log = sb.exec("git log --all --format=%H").output.split()
        assert fix not in log and log[0] == spec.base_commit
        refs = sb.exec(
            "git for-each-ref --format='%(refname)'; git stash list; git reflog | wc -l"
        ).output.split()
        assert refs == ["refs/heads/main", "0"]
        assert sb.exec("git fsck --unreachable --no-reflogs 2>/dev/null | wc -l").output.strip() == "0"
        # the venv is on PATH, the package is importable, the tree belongs to the sandbox user
        assert sb.exec("which python").output.strip() == "/opt/venv/bin/python"
        assert sb.exec("python -c 'import cachetools, pytest'").exit_code == 0
        assert sb.exec("touch x && rm x").exit_code == 0


def test_instance_image_ships_compiled_modules(spec, built, docker_client):
    """The tree's bytecode and pytest's rewritten test modules, in the test-patched version the grader
    runs, are in the image and git-ignored: grading applies the test patch and compiles nothing again."""
    with Sandbox(SandboxConfig(image=built, workdir="/testbed", timeout=120), client=docker_client) as sb:
        assert sb.exec("git status --porcelain").output == ""
        shipped = sb.exec("find . -name '*.pyc' | sort").output.split()
        assert "./src/cachetools/__pycache__/__init__.cpython-311.pyc" in shipped
        rewritten = [p for p in shipped if "/tests/__pycache__/test_cached.cpython-311-pytest-" in p]
        assert len(rewritten) == 1, shipped
        assert sb.exec("touch /tmp/before").exit_code == 0
        # the test patch applied, the tests run, the test patch reverted (as grading does)
        sb.write_file("/tmp/t.patch", spec.test_patch)
        res = sb.run(
            f"cd /testbed && git apply /tmp/t.patch && {spec.test_command()}; rc=$?; git apply -R /tmp/t.patch; exit $rc",
            timeout=120,
        )
        assert " passed" in res.output and "test_decorator_lock_info" in res.output, res.output[-2000:]
        assert sb.exec("find . -name '*.pyc' -newer /tmp/before").output.split() == []
        assert sb.exec("git status --porcelain").output == ""


def test_missing_commit_and_missing_repo_are_clear_errors(spec, docker_client, base_image, tmp_path):
    bad_commit = spec.model_copy(update={"base_commit": "0123456789" * 4, "instance_id": "bad-commit"})
    with pytest.raises(
        ImageBuildError, match=r"commit 0123456789.* not found in repo pypi:cachetools==5\.5\.1"
    ):
        ensure_instance_image(bad_commit, client=docker_client, log_dir=tmp_path)
    bad_repo = spec.model_copy(update={"repo_source": "pypi:cachetools==0.0.999", "instance_id": "bad-repo"})
    with pytest.raises(ImageBuildError, match=r"cachetools==0\.0\.999: no such release; the index offers"):
        ensure_instance_image(bad_repo, client=docker_client, log_dir=tmp_path)
    gone = spec.model_copy(update={"repo_source": str(tmp_path / "nope"), "instance_id": "bad-dir"})
    with pytest.raises(ImageBuildError, match="nope: no such file"):
        ensure_instance_image(gone, client=docker_client, log_dir=tmp_path)


def test_failed_build_keeps_its_log_and_labels_leftovers(spec, docker_client, base_image, tmp_path):
    broken = spec.model_copy(
        update={"env": EnvSpec(install=["echo about to fail", "exit 7"]), "instance_id": "broken"}
    )
    with pytest.raises(ImageBuildError) as exc:
        ensure_instance_image(broken, client=docker_client, log_dir=tmp_path)
    assert str(tmp_path / "instance.log") in str(exc.value)
    assert "about to fail" in (tmp_path / "instance.log").read_text()
    found = docker_client.containers.list(
        all=True, filters={"ancestor": image_tags(broken, docker_client)[0]}
    )
    # The env image is shared by every default-env task: other processes' sandboxes may run from it now.
    mine = [c for c in found if c.labels.get(f"{LABEL}.pid") in (None, str(os.getpid()))]
    assert not mine, [c.labels for c in mine]


def test_prune_keeps_images_of_known_tasks(spec, built, docker_client):
    removed = prune_images([spec], client=docker_client, dry_run=True)
    env_tag, inst_tag = image_tags(spec, docker_client)
    assert inst_tag not in removed and env_tag not in removed
    all_known = load_tasks().tasks
    assert set(image_tags(s, docker_client)[1] for s in all_known).isdisjoint(
        prune_images(all_known, client=docker_client, dry_run=True)
    )


# ------------------------------------------------------------------------ Python versions, prebuilt images

PY39_TEST = """\
import sys

import cachetools


def test_interpreter():
    assert sys.version_info[:2] == (3, 9)


def test_marked():
    assert getattr(cachetools, "SRL_MARK", None) == 1
"""


def _new_file_diff(path: str, text: str) -> str:
    lines = text.splitlines()
    body = "".join(f"+{ln}\n" for ln in lines)
    return f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}"


@pytest.fixture(scope="module")
def py39_spec(tmp_path_factory):
    """A task over a release of cachetools from the package index, asking for Python 3.9."""
    from envs.pypi import child_commit, diff, read_file, sdist_repo
    from envs.spec import TaskSpec

    repo, commit = sdist_repo("cachetools", "5.3.3")
    init = "src/cachetools/__init__.py"
    gold = child_commit(repo, commit, {init: read_file(repo, commit, init) + "\nSRL_MARK = 1\n"}, "mark")
    return TaskSpec(
        instance_id="srl-py39-cachetools",
        repo="cachetools",
        repo_source=str(repo),
        base_commit=commit,
        env=EnvSpec(python="3.9"),
        test_patch=_new_file_diff("tests/test_srl_py39.py", PY39_TEST),
        patch=diff(repo, commit, gold),
        FAIL_TO_PASS=["tests/test_srl_py39.py::test_marked"],
        PASS_TO_PASS=[
            "tests/test_srl_py39.py::test_interpreter",
            "tests/test_lru.py::LRUCacheTest::test_lru",
        ],
    )


def _evaluate(spec, patch, client, model="gold"):
    """(report, test output) of one graded run."""
    from harness.evaluate import evaluate_instance

    outcome = evaluate_instance(spec, patch, client=client, model=model)
    return outcome.report, outcome.files.get("test_output.txt", "")


@pytest.mark.slow
def test_python39_task_image_builds_offline_and_grades(py39_spec, docker_client, tmp_path):
    from envs.pypi import child_commit, diff, read_file

    tag = ensure_instance_image(py39_spec, client=docker_client, log_dir=tmp_path, image_source="build")
    env_tag, inst_tag = image_tags(py39_spec, docker_client)
    assert tag == inst_tag
    env = docker_client.images.get(env_tag)
    assert env.labels[f"{LABEL}.python"] == "3.9" and env.labels[f"{LABEL}.base"] == "srl-base:bullseye"
    gold, out = _evaluate(py39_spec, py39_spec.patch, docker_client)
    assert gold.resolved, out[-3000:]
    assert "Python 3.9." in out
    # a patch that leaves the package alone: the FAIL_TO_PASS test fails, the Python 3.9 check passes
    repo, base = py39_spec.repo_source, py39_spec.base_commit
    other = child_commit(
        Path(repo), base, {"README.rst": read_file(Path(repo), base, "README.rst") + "\nx\n"}, "x"
    )
    wrong, out = _evaluate(py39_spec, diff(Path(repo), base, other), docker_client, model="other")
    assert not wrong.resolved
    assert wrong.test_statuses["tests/test_srl_py39.py::test_interpreter"] == "PASSED", out[-3000:]
    assert wrong.test_statuses["tests/test_srl_py39.py::test_marked"] == "FAILED"


def test_python_no_offline_source_has_is_a_clear_error(spec, docker_client, tmp_path):
    from harness.images import check_pythons

    old = spec.model_copy(update={"env": EnvSpec(python="3.6"), "instance_id": "needs-py36"})
    with pytest.raises(ImageBuildError) as exc:
        ensure_instance_image(old, client=docker_client, log_dir=tmp_path, image_source="build")
    msg = str(exc.value)
    assert "Python 3.6 is needed by needs-py36" in msg
    assert "--base-image IMAGE" in msg and "prebuilt" in msg and "online" in msg
    with pytest.raises(ImageBuildError, match=r"Python 3\.6 is needed by needs-py36, other-py36"):
        check_pythons([old, old.model_copy(update={"instance_id": "other-py36"}), spec])


STANDIN = f"swebench/sweb.eval.x86_64.{TASK}:latest"  # SWE-bench's naming ("__" would be "_1776_")


@pytest.fixture
def standin(spec, built, docker_client):
    """A local stand-in of SWE-bench's published image of this task: the repo at /testbed, owned by root,
    its environment as the conda env `testbed` under /opt/miniconda3 (not on PATH), no /opt/venv."""
    import io

    dockerfile = "\n".join(
        [
            f"FROM {built}",
            "USER root",
            "RUN python3 -m venv /opt/miniconda3/envs/testbed && "
            "/opt/miniconda3/envs/testbed/bin/pip install -q --no-index --find-links /opt/srl/wheels pytest && "
            "cd /testbed && /opt/miniconda3/envs/testbed/bin/pip install -q --no-index "
            "--find-links /opt/srl/wheels -e . && git status --porcelain && "
            "rm -rf /opt/venv && chown -R root:root /testbed",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin VIRTUAL_ENV=",
        ]
    )
    docker_client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=STANDIN, labels={LABEL: "1"}, rm=True, forcerm=True
    )
    yield STANDIN
    docker_client.images.remove(STANDIN, force=True)


def test_prebuilt_image_is_used_with_its_conda_env(spec, standin, docker_client, tmp_path, monkeypatch):
    from harness.images import prebuilt_names, swebench_image_name

    assert swebench_image_name(TASK) == STANDIN and prebuilt_names(spec)[:2] == [
        STANDIN,
        f"xingyaoww/sweb.eval.x86_64.{TASK}:latest",  # SWE-Gym's naming
    ]
    assert (
        swebench_image_name("tkem__cachetools-387")
        == "swebench/sweb.eval.x86_64.tkem_1776_cachetools-387:latest"
    )
    tag = ensure_instance_image(spec, client=docker_client, log_dir=tmp_path, image_source="prebuilt")
    img = docker_client.images.get(tag)
    assert img.labels[f"{LABEL}.prebuilt"] == STANDIN and img.labels[LABEL] == "1"
    # `auto` finds it too; `build` ignores it
    assert ensure_instance_image(spec, client=docker_client, log_dir=tmp_path) == tag
    assert ensure_instance_image(spec, client=docker_client, image_source="build") == image_tags(spec)[1]
    with Sandbox(SandboxConfig(image=tag, workdir="/testbed", timeout=60), client=docker_client) as sb:
        assert sb.exec("which python").output.strip() == "/opt/miniconda3/envs/testbed/bin/python"
        assert sb.exec("touch x && rm x && git status --porcelain").output == ""
    monkeypatch.setenv("SRL_SWE_IMAGE_SOURCE", "prebuilt")
    report, out = _evaluate(spec, spec.patch, docker_client)
    assert report.resolved, out[-3000:]


def test_prebuilt_source_without_an_image_is_a_clear_error(spec, docker_client, tmp_path):
    missing = spec.model_copy(update={"instance_id": "nobody__nothing-1"})
    with pytest.raises(
        ImageBuildError, match=r"no prebuilt image .*swebench/sweb\.eval\.x86_64\.nobody_1776_nothing-1"
    ):
        ensure_instance_image(missing, client=docker_client, log_dir=tmp_path, image_source="prebuilt")
