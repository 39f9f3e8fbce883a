"""TaskSpec: validation, derived scripts and content keys (unit tier, no Docker)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from envs.spec import EnvSpec, TaskSpec, is_test_path, patch_files

TEST_PATCH = """\
diff --git a/tests/test_mod.py b/tests/test_mod.py
--- a/tests/test_mod.py
+++ b/tests/test_mod.py
@@ -1,2 +1,3 @@
 def test_a():
     assert True
+# more
"""

GOLD = """\
diff --git a/mod.py b/mod.py
--- a/mod.py
+++ b/mod.py
@@ -1 +1 @@
-X = 1
+X = 2
"""


def make(**kw) -> TaskSpec:
    data = dict(
        instance_id="own__repo-1",
        repo="own/repo",
        base_commit="a" * 40,
        test_patch=TEST_PATCH,
        patch=GOLD,
        FAIL_TO_PASS=["tests/test_mod.py::test_b"],
        PASS_TO_PASS=["tests/test_mod.py::test_a"],
    )
    data.update(kw)
    return TaskSpec(**data)


def test_unknown_field_is_rejected_with_its_name():
    with pytest.raises(ValidationError) as exc:
        make(fail_to_pass=["x"])
    assert "fail_to_pass" in str(exc.value)


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("base_commit", "not-a-sha", "commit hash"),
        ("instance_id", "has space", "no spaces"),
        ("FAIL_TO_PASS", "[not json", "JSON-encoded list"),
        ("patch", "this is not a diff\n@@ nonsense", "unified diff"),
    ],
)
def test_bad_values_say_what_was_expected(field, value, needle):
    with pytest.raises(ValidationError) as exc:
        make(**{field: value})
    assert field in str(exc.value) and needle in str(exc.value)


def test_test_lists_accept_json_encoded_strings():
    spec = make(FAIL_TO_PASS=json.dumps(["t::x"]), PASS_TO_PASS="")
    assert spec.FAIL_TO_PASS == ["t::x"] and spec.PASS_TO_PASS == []


def test_a_test_cannot_be_in_both_lists():
    with pytest.raises(ValidationError, match="both"):
        make(FAIL_TO_PASS=["t::a"], PASS_TO_PASS=["t::a"])


def test_default_env_and_test_command():
    spec = make()
    assert spec.env.pip_packages == ["pytest"]
    assert spec.env.install == ["pip install -e ."]
    assert spec.test_command() == "python -m pytest -rA -p no:cacheprovider tests/test_mod.py"
    assert make(test_cmd="tox -e py").test_command() == "tox -e py"
    # No test names: run the test files of the test patch.
    assert make(FAIL_TO_PASS=[], PASS_TO_PASS=[]).tests_to_run() == ["tests/test_mod.py"]


def test_patch_files_and_test_paths():
    assert patch_files(TEST_PATCH + GOLD) == ["tests/test_mod.py", "mod.py"]
    assert is_test_path("tests/test_x.py") and is_test_path("pkg/test_x.py") and is_test_path("a/b_test.py")
    assert not is_test_path("src/pkg/mod.py") and not is_test_path("src/contest.py")


def test_keys_are_stable_and_ignore_provenance():
    a, b = make(), make()
    assert a.env_key == b.env_key and a.instance_key == b.instance_key
    c = make(
        metadata={"fix_commit": "b" * 40}, repo_source="/somewhere/else.bundle", problem_statement="other"
    )
    assert c.instance_key == a.instance_key


@pytest.mark.parametrize(
    "change,env_changes",
    [
        ({"env": EnvSpec(pip_packages=["pytest", "pytz"])}, True),
        ({"env": EnvSpec(system_packages=["make"])}, True),
        ({"env": EnvSpec(install=["pip install ."])}, False),
        ({"base_commit": "b" * 40}, False),
    ],
)
def test_any_recipe_change_changes_the_keys(change, env_changes):
    a, b = make(), make(**change)
    assert (a.env_key != b.env_key) is env_changes
    assert a.instance_key != b.instance_key


def test_python_version_is_checked():
    assert EnvSpec(python="3.9").python == "3.9"
    with pytest.raises(ValidationError, match="3.11"):
        EnvSpec(python="py3")
