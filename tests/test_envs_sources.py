"""Task sources: task files, SWE-bench JSON/JSONL, saved HF data sets, plug-in packs (unit tier)."""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from conftest import SHARED_FIXTURES, needs_shared

from envs.sources import TaskSourceError, bundled_packs, load_tasks, write_task
from envs.spec import TaskSpec

SWE = SHARED_FIXTURES / "swe-bench"
LITE = SWE / "swe-bench-lite-test.json"
DEV = SWE / "swe-bench-dev-easy.json"


def _records() -> list[dict]:
    return json.loads(LITE.read_text())


#: A task of the bundled pack (release-mined from the package index: cachetools 5.5.1 -> 5.5.2).
EXAMPLE = "cachetools-5.5.2"


def test_bundled_examples_pack_is_the_default():
    """The pack is recipes only: repos come from the package index, patches are derived on load."""
    from envs.sources import bundled_tasks_root

    res = load_tasks()
    assert "examples" in bundled_packs()
    assert not res.errors, res.errors
    ids = {t.instance_id for t in res.tasks}
    assert {EXAMPLE, "marshmallow-3.14.0"} <= ids
    assert len(ids) >= 8
    assert len({t.recipe["package"] for t in res.tasks}) >= 3
    for t in res.tasks:
        assert t.recipe and t.recipe["kind"] in ("release", "synth")
        assert t.repo_source.startswith("pypi:") and t.patch.strip() and t.FAIL_TO_PASS
    mined = [t for t in res.tasks if t.recipe["kind"] == "release"]
    assert len(mined) >= 5 and all(t.metadata.get("release") for t in mined)
    root = bundled_tasks_root() / "examples"
    for path in root.glob("*.yaml"):  # nothing copied in: no patches, no repos
        data = yaml.safe_load(path.read_text())
        assert "recipe" in data and not {"patch", "test_patch", "repo_source"} & set(data), path
    assert not [p for p in bundled_tasks_root().rglob("*") if p.suffix in (".bundle", ".traj")]


@needs_shared
def test_swebench_json_lists_and_extra_fields():
    res = load_tasks(str(LITE))
    assert not res.errors and len(res.tasks) == 5
    t = res.get("django__django-16255")
    assert t.repo == "django/django" and t.repo_source == "https://github.com/django/django.git"
    assert t.metadata["version"] == "4.2" and "environment_setup_commit" in t.metadata
    assert t.FAIL_TO_PASS == _records()[0]["FAIL_TO_PASS"]


@needs_shared
def test_swebench_identical_duplicates_are_merged():
    res = load_tasks(str(DEV))
    assert not res.errors
    assert len(res.tasks) == 4  # pylint-dev__astroid-1268 appears twice, identically


@needs_shared
def test_swebench_jsonl_with_json_encoded_test_lists(tmp_path):
    recs = _records()[:2]
    lines = []
    for r in recs:
        r = dict(r, FAIL_TO_PASS=json.dumps(r["FAIL_TO_PASS"]), PASS_TO_PASS=json.dumps(r["PASS_TO_PASS"]))
        lines.append(json.dumps(r))
    lines.append("{not json")
    f = tmp_path / "tasks.jsonl"
    f.write_text("\n".join(lines) + "\n")
    res = load_tasks(str(f))
    assert [t.FAIL_TO_PASS for t in res.tasks] == [r["FAIL_TO_PASS"] for r in recs]
    assert len(res.errors) == 1 and f"{f}:3" in str(res.errors[0]) and "invalid JSON" in str(res.errors[0])


@needs_shared
def test_repos_dir_resolves_checkouts_and_bundles(tmp_path):
    (tmp_path / "django__django").mkdir()
    (tmp_path / "sympy__sympy.bundle").write_bytes(b"")
    res = load_tasks(str(LITE), repos=tmp_path)
    by = res.by_id()
    assert by["django__django-16255"].repo_source == str(tmp_path / "django__django")
    assert by["sympy__sympy-13031"].repo_source == str(tmp_path / "sympy__sympy.bundle")
    # the others are reported (repo missing) and skipped
    assert {e.instance_id for e in res.errors} == {
        "pytest-dev__pytest-11143",
        "scikit-learn__scikit-learn-13584",
    }
    assert all(e.field == "repo" and "neither" in e.message for e in res.errors)


@needs_shared
def test_hf_dataset_saved_on_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    recs = _records()
    rows = {k: [r[k] for r in recs] for k in recs[0]}
    rows["FAIL_TO_PASS"] = [json.dumps(r["FAIL_TO_PASS"]) for r in recs]  # as on the HF hub
    rows["PASS_TO_PASS"] = [json.dumps(r["PASS_TO_PASS"]) for r in recs]
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "ds"))
    res = load_tasks(str(tmp_path / "ds"))
    assert not res.errors
    assert [t.instance_id for t in res.tasks] == [r["instance_id"] for r in recs]
    assert res.tasks[0].FAIL_TO_PASS == recs[0]["FAIL_TO_PASS"]


def test_task_dir_bad_task_names_file_and_field_and_others_still_load(tmp_path):
    good = load_tasks().get(EXAMPLE)
    pack = tmp_path / "pack"
    write_task(good, pack / "good.yaml", repo_source=good.repo_source)
    bad = good.to_yaml_dict()
    bad["instance_id"] = "bad-1"
    bad["base_commit"] = "xyz"
    bad["FAIL_TO_PAS"] = ["typo"]
    (pack / "bad.yaml").write_text(yaml.safe_dump(bad))
    (pack / "broken.yaml").write_text("instance_id: [unclosed\n")
    res = load_tasks(str(pack))
    assert [t.instance_id for t in res.tasks] == [EXAMPLE]
    msgs = [str(e) for e in res.errors]
    assert any(str(pack / "bad.yaml") in m and "base_commit" in m and "commit hash" in m for m in msgs)
    assert any("FAIL_TO_PAS" in m and "unknown field" in m for m in msgs)
    assert any(str(pack / "broken.yaml") in m and "YAML" in m for m in msgs)


def test_task_file_round_trip_keeps_everything(tmp_path):
    for spec in load_tasks().tasks:
        path = write_task(spec, tmp_path / f"{spec.instance_id}.yaml", repo_source=spec.repo_source)
        (back,) = load_tasks(str(path)).tasks
        assert back == spec


def test_relative_repo_source_is_relative_to_the_task_file(tmp_path):
    spec = load_tasks().get(EXAMPLE).model_copy(update={"recipe": None})  # a task file with patches
    (tmp_path / "repos").mkdir()
    write_task(spec, tmp_path / "t.yaml", repo_source="repos/x.bundle")
    (t,) = load_tasks(str(tmp_path / "t.yaml")).tasks
    assert t.repo_source == str(tmp_path / "repos" / "x.bundle")


def test_unknown_source_is_a_clear_error():
    with pytest.raises(TaskSourceError, match="no such file or directory, and no pack"):
        load_tasks("no-such-pack")


def test_plugin_pack_via_entry_point(tmp_path, monkeypatch):
    """A third-party pack: a dist-info on sys.path declaring an `srl_swe.tasks` entry point."""
    spec = load_tasks().get(EXAMPLE)
    mod = tmp_path / "srl_demo_pack.py"
    data = spec.model_dump(mode="json")
    bad = dict(data, instance_id="bad one")
    mod.write_text(
        "import json\n"
        f"DATA = json.loads({json.dumps(json.dumps([data, bad]))})\n"
        "def tasks():\n    return DATA\n"
        f"def as_path():\n    return {str(tmp_path / 'packdir')!r}\n"
    )
    write_task(
        spec.model_copy(update={"instance_id": "from-path-1"}),
        tmp_path / "packdir" / "a.yaml",
        repo_source=spec.repo_source,
    )
    dist = tmp_path / "srl_demo_pack-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: srl-demo-pack\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[srl_swe.tasks]\ndemo = srl_demo_pack:tasks\ndemo-path = srl_demo_pack:as_path\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "srl_demo_pack", raising=False)
    res = load_tasks("demo")
    assert [t.instance_id for t in res.tasks] == [EXAMPLE]
    assert (
        len(res.errors) == 1 and "instance_id" in str(res.errors[0]) and "entry point" in str(res.errors[0])
    )
    assert isinstance(res.tasks[0], TaskSpec)
    assert [t.instance_id for t in load_tasks("demo-path").tasks] == ["from-path-1"]


def test_cli_list_and_show_report_bad_tasks_with_exit_code(tmp_path):
    from typer.testing import CliRunner

    from harness.cli_task import task_app

    good = load_tasks().get(EXAMPLE)
    write_task(good, tmp_path / "good.yaml", repo_source=good.repo_source)
    (tmp_path / "bad.yaml").write_text("instance_id: x\nrepo: a/b\n")
    runner = CliRunner()
    ok = runner.invoke(task_app, ["list"])
    assert ok.exit_code == 0 and EXAMPLE in ok.output
    res = runner.invoke(task_app, ["list", "--tasks", str(tmp_path)])
    assert res.exit_code == 1
    assert EXAMPLE in res.output
    assert "bad.yaml" in res.output and "base_commit: required field is missing" in res.output
    shown = runner.invoke(task_app, ["show", EXAMPLE, "--scripts"])
    assert shown.exit_code == 0 and "# ---- evaluation" in shown.output and good.base_commit in shown.output
    missing = runner.invoke(task_app, ["show", "nope"])
    assert missing.exit_code == 2 and "unknown task id" in missing.output
    assert runner.invoke(task_app, ["list", "--tasks", "no-such-pack"]).exit_code == 2
