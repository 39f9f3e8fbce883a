"""Env and instance images: real builds, cache hits, change detection, hidden future commits (docker)."""

from __future__ import annotations

import time

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

TASK = "tkem__cachetools-387"


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
    fix = spec.metadata["fix_commit"]
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
        rewritten = [p for p in shipped if "/tests/__pycache__/test_cachedmethod.cpython-311-pytest-" in p]
        assert len(rewritten) == 1, shipped
        assert sb.exec("touch /tmp/before").exit_code == 0
        res = sb.run(spec.eval_script(), timeout=120)
        assert " passed" in res.output and "AutospecTest" in res.output, res.output[-2000:]
        assert sb.exec("find . -name '*.pyc' -newer /tmp/before").output.split() == []
        assert sb.exec("git status --porcelain").output == ""


def test_missing_commit_and_missing_repo_are_clear_errors(spec, docker_client, base_image, tmp_path):
    bad_commit = spec.model_copy(update={"base_commit": "0123456789" * 4, "instance_id": "bad-commit"})
    with pytest.raises(
        ImageBuildError, match="commit 0123456789.* not found in repo .*tkem__cachetools.bundle"
    ):
        ensure_instance_image(bad_commit, client=docker_client, log_dir=tmp_path)
    bad_repo = spec.model_copy(
        update={"repo_source": str(tmp_path / "nope.bundle"), "instance_id": "bad-repo"}
    )
    with pytest.raises(ImageBuildError, match="nope.bundle: no such file"):
        ensure_instance_image(bad_repo, client=docker_client, log_dir=tmp_path)


def test_failed_build_keeps_its_log_and_labels_leftovers(spec, docker_client, base_image, tmp_path):
    broken = spec.model_copy(
        update={"env": EnvSpec(install=["echo about to fail", "exit 7"]), "instance_id": "broken"}
    )
    with pytest.raises(ImageBuildError) as exc:
        ensure_instance_image(broken, client=docker_client, log_dir=tmp_path)
    assert str(tmp_path / "instance.log") in str(exc.value)
    assert "about to fail" in (tmp_path / "instance.log").read_text()
    assert not docker_client.containers.list(
        all=True, filters={"ancestor": image_tags(broken, docker_client)[0]}
    )


def test_prune_keeps_images_of_known_tasks(spec, built, docker_client):
    removed = prune_images([spec], client=docker_client, dry_run=True)
    env_tag, inst_tag = image_tags(spec, docker_client)
    assert inst_tag not in removed and env_tag not in removed
    all_known = load_tasks().tasks
    assert set(image_tags(s, docker_client)[1] for s in all_known).isdisjoint(
        prune_images(all_known, client=docker_client, dry_run=True)
    )
