"""Repos from the package index (`envs.pypi`), task recipes (`envs.recipes`) and release mining
(`envs.mining`, `srl task mine --pypi`).

Unit tier: archives built here (modes, top folder, egg-info, determinism), version ranges, changelog
sections. Registry tier: real source distributions through the machine's pip (cachetools 5.5.1/5.5.2,
small: ~30 KB each). Docker tier: `srl task mine --pypi` over one release pair, end to end.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from envs import pypi
from envs.mining import _section_for, is_release_source, is_release_test, select_versions
from envs.recipes import RecipeError, apply_recipe, check_recipe, materialize, release_recipe
from envs.repos import RepoError, export_at_commit, open_repo
from envs.sources import load_tasks

# ------------------------------------------------------------------------------------------ helpers


def _tar(path: Path, entries: list[tuple[str, bytes, int]], top: str = "demo-1.0", mtime: int = 0) -> Path:
    """A .tar.gz sdist with (name, content, mode) entries under `top/` (and directory entries)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        dirs = sorted(
            {
                f"{top}/" + "/".join(n.split("/")[:i])
                for n, _, _ in entries
                for i in range(1, n.count("/") + 1)
            }
        )
        for d in [top, *dirs]:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
            tf.addfile(info)
        for name, data, mode in entries:
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode, info.mtime, info.uname = len(data), mode, mtime, f"user{mtime}"
            tf.addfile(info, io.BytesIO(data))
    return path


ENTRIES = [
    ("demo/__init__.py", b"def add(a, b):\n    return a + b\n", 0o644),
    ("bin/run.sh", b"#!/bin/sh\necho hi\n", 0o775),
    ("tests/test_demo.py", b"from demo import add\n\ndef test_add():\n    assert add(1, 2) == 3\n", 0o600),
    ("demo.egg-info/PKG-INFO", b"Name: demo\n", 0o644),
    ("PKG-INFO", b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n", 0o644),
]


def _seed(
    cache: Path, archive_entries=ENTRIES, mtime: int = 0, name: str = "demo", version: str = "1.0"
) -> None:
    """Put a source archive where `download_sdist` keeps it, so no index is asked."""
    _tar(
        cache / "sdists" / f"{name}-{version}" / f"{name}-{version}.tar.gz",
        archive_entries,
        f"{name}-{version}",
        mtime,
    )


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={repo}", *args], capture_output=True, text=True, check=True
    ).stdout


# ------------------------------------------------------------------------------------------ unit


def test_parse_pypi_source() -> None:
    assert pypi.parse_pypi_source("pypi:cachetools==5.3.0") == ("cachetools", "5.3.0")
    assert pypi.parse_pypi_source("pypi:more-itertools == 10.1.0") == ("more-itertools", "10.1.0")
    assert pypi.parse_pypi_source("/some/dir") is None
    assert pypi.parse_pypi_source("https://github.com/a/b.git") is None
    for bad in ("pypi:cachetools", "pypi:cachetools>=5", "pypi:==1.0"):
        with pytest.raises(RepoError, match="expected pypi:NAME==VERSION"):
            pypi.parse_pypi_source(bad)


def test_archive_files_strip_top_folder_normalize_modes_and_drop_egg_info(tmp_path: Path) -> None:
    files = pypi.archive_files(_tar(tmp_path / "a.tar.gz", ENTRIES))
    assert sorted(files) == ["PKG-INFO", "bin/run.sh", "demo/__init__.py", "tests/test_demo.py"]
    assert files["bin/run.sh"][0] == "100755"  # an execute bit in the archive
    assert files["tests/test_demo.py"][0] == "100644"  # 0600 is not special
    assert files["demo/__init__.py"] == ("100644", ENTRIES[0][1])
    # A zip sdist (old releases) reads the same.
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        for name, data, mode in ENTRIES:
            info = zipfile.ZipInfo(f"demo-1.0/{name}")
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, data)
    assert pypi.archive_files(tmp_path / "a.zip") == files


def test_release_commit_is_deterministic_across_caches_times_and_owners(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    _seed(one, mtime=0)
    _seed(two, ENTRIES[::-1], mtime=1_700_000_000)  # other order, other times and owners
    repo1, c1 = pypi.sdist_repo("demo", "1.0", cache=one)
    repo2, c2 = pypi.sdist_repo("demo", "1.0", cache=two)
    assert c1 == c2
    # The same bytes give the same hash on every machine (author, committer, date and message fixed): the
    # hash `git add -A && git commit` gives for these files with those identities and dates.
    assert c1 == "52ca2c44523997ab18ab62793ce74f0d3e702da2"
    assert _git(repo1, "log", "-1", "--format=%an <%ae> %at|%cn <%ce> %ct|%P|%s", c1).strip() == (
        "srl-swe <srl-swe@localhost> 946684800|srl-swe <srl-swe@localhost> 946684800||demo 1.0 (source distribution)"
    )
    tree = _git(repo1, "ls-tree", "-r", c1)
    assert "100755 blob" in tree.split("bin/run.sh")[0].splitlines()[-1]
    assert "egg-info" not in tree
    entry = json.loads((one / f"v{pypi.FORMAT}" / "index" / "demo==1.0.json").read_text())
    assert entry["commit"] == c1 and len(entry["sha256"]) == 64 and entry["files"] == 4
    # A lost repository is rebuilt from the cached archive, with the same commit.
    import shutil

    shutil.rmtree(repo1)
    assert pypi.sdist_repo("demo", "1.0", cache=one) == (repo1, c1)
    # Warm: the index answers without touching the archive.
    (one / "sdists" / "demo-1.0" / "demo-1.0.tar.gz").unlink()
    assert pypi.sdist_repo("demo", "1.0", cache=one) == (repo1, c1)


def test_child_commit_is_deterministic_and_idempotent(tmp_path: Path) -> None:
    _seed(tmp_path / "c")
    repo, base = pypi.sdist_repo("demo", "1.0", cache=tmp_path / "c")
    changes = {"demo/__init__.py": "def add(a, b):\n    return a - b\n", "bin/run.sh": "#!/bin/sh\necho bye\n",
               "PKG-INFO": None}  # fmt: skip
    child = pypi.child_commit(repo, base, changes, "mutate add")
    assert pypi.child_commit(repo, base, dict(reversed(list(changes.items()))), "mutate add") == child
    assert _git(repo, "rev-parse", f"{child}^").strip() == base
    assert pypi.read_file(repo, child, "demo/__init__.py").endswith("a - b\n")
    assert pypi.read_file(repo, child, "PKG-INFO") is None
    assert _git(repo, "ls-tree", child, "bin/run.sh").startswith("100755")  # the mode is kept
    # The same commit in another cache: the hash depends on content only.
    _seed(tmp_path / "d")
    repo2, base2 = pypi.sdist_repo("demo", "1.0", cache=tmp_path / "d")
    assert pypi.child_commit(repo2, base2, changes, "mutate add") == child
    assert pypi.child_commit(repo, base, changes, "another message") != child
    diff = pypi.diff(repo, base, child, ["demo/__init__.py"])
    assert diff.startswith("diff --git a/demo/__init__.py") and "-    return a + b" in diff


def test_select_versions() -> None:
    vs = ["0.9", "1.0.0", "1.0.1a1", "1.0.1", "1.1.0", "2.0.0"]
    assert select_versions(vs, "1.0.0..1.1.0") == ["1.0.0", "1.0.1", "1.1.0"]
    assert select_versions(vs, "1.0.0..1.1.0", pre=True) == ["1.0.0", "1.0.1a1", "1.0.1", "1.1.0"]
    assert select_versions(vs, "..1.0.0") == ["0.9", "1.0.0"]
    assert select_versions(vs, "1.1.0..") == ["1.1.0", "2.0.0"]
    with pytest.raises(ValueError, match="expected A..B"):
        select_versions(vs, "1.0.0")


def test_release_file_classes() -> None:
    assert is_release_source("src/cachetools/__init__.py") and is_release_source("tabulate.py")
    for path in ("setup.py", "docs/conf.py", "tests/test_x.py", "src/x.egg-info/a.py", "README.rst"):
        assert not is_release_source(path), path
    assert is_release_test("toolz/tests/test_itertoolz.py") and not is_release_test("tests/data.json")


CHANGELOG = """\
v5.5.2 (2025-02-20)
===================

- Reduce number of ``@cached`` lock/unlock operations.

- Improve documentation.


v5.5.1 (2025-01-21)
===================

- Add documentation regarding caching of exceptions.
"""

MD_CHANGELOG = """\
# Changelog

## 1.2.0

* Fixed `foo()` for empty input (#12).

## 1.1.0

* Added `bar()`.
"""


def test_changelog_sections() -> None:
    assert _section_for(CHANGELOG, "5.5.2") == (
        "- Reduce number of ``@cached`` lock/unlock operations.\n\n- Improve documentation."
    )
    assert _section_for(CHANGELOG, "5.5.1") == "- Add documentation regarding caching of exceptions."
    assert _section_for(MD_CHANGELOG, "1.2.0") == "* Fixed `foo()` for empty input (#12)."
    assert _section_for(CHANGELOG, "5.5") is None and _section_for(MD_CHANGELOG, "1.3.0") is None


def test_check_recipe_errors() -> None:
    with pytest.raises(RecipeError, match="kind: expected one of release, synth"):
        check_recipe({"kind": "magic"})
    with pytest.raises(RecipeError, match="'test_files': expected a non-empty list"):
        check_recipe({"kind": "release", "package": "p", "from": "1", "to": "2", "source_files": ["a.py"]})
    with pytest.raises(RecipeError, match="expected a mapping"):
        check_recipe(["release"])


def test_release_recipe_from_seeded_archives(tmp_path: Path) -> None:
    cache = tmp_path / "c"
    _seed(cache)
    fixed = [
        (n, d.replace(b"a + b", b"b + a"), m) if n == "demo/__init__.py" else (n, d, m) for n, d, m in ENTRIES
    ]
    fixed.append(("tests/test_more.py", b"def test_more():\n    pass\n", 0o644))
    _seed(cache, fixed, version="1.1")
    recipe = release_recipe("demo", "1.0", "1.1", ["demo/__init__.py"], ["tests/test_more.py"])
    out = materialize(recipe, cache)
    _, base = pypi.sdist_repo("demo", "1.0", cache)
    assert out["repo_source"] == "pypi:demo==1.0" and out["base_commit"] == base
    assert "+    return b + a" in out["patch"] and "new file mode 100644" in out["test_patch"]
    memo = list((cache / f"v{pypi.FORMAT}" / "recipes").glob("*.json"))
    assert len(memo) == 1 and json.loads(memo[0].read_text()) == out
    record = {"instance_id": "demo-1.1", "repo": "demo", "base_commit": base, "recipe": recipe}
    assert apply_recipe(record, cache)["patch"] == out["patch"]
    with pytest.raises(RecipeError, match="0000000 in the file, but the recipe gives") as info:
        apply_recipe({**record, "base_commit": "0000000"}, cache)
    assert info.value.field == "base_commit"
    assert (
        apply_recipe({**record, "base_commit": "main"}, cache)["base_commit"] == "main"
    )  # TaskSpec says why
    assert apply_recipe({**record, "patch": out["patch"]}, cache) == {**record, **out}  # a dumped spec
    with pytest.raises(RecipeError, match="stores no patch"):
        apply_recipe({**record, "patch": out["patch"].replace("b + a", "a + b + 0")}, cache)
    with pytest.raises(RecipeError, match="do not change between demo 1.0 and 1.1"):
        materialize(release_recipe("demo", "1.0", "1.1", ["bin/run.sh"], ["tests/test_more.py"]), cache)


# ------------------------------------------------------------------------------------------ registry


@pytest.fixture(scope="module")
def cachetools_552() -> tuple[Path, str]:
    return pypi.sdist_repo("cachetools", "5.5.2")


def test_real_sdist_repo_and_open_repo(cachetools_552, tmp_path: Path) -> None:
    repo, commit = cachetools_552
    files = pypi.list_files(repo, commit)
    assert "src/cachetools/__init__.py" in files and "tests/test_cached.py" in files
    assert open_repo("pypi:cachetools==5.5.2").git_dir.rstrip("/") == str(repo).rstrip("/")
    dest = tmp_path / "export"
    assert export_at_commit("pypi:cachetools==5.5.2", commit, dest) == commit
    out = subprocess.run(["git", "-C", str(dest), "log", "--format=%H %s"], capture_output=True, text=True)
    assert out.stdout.strip() == f"{commit} cachetools 5.5.2 (source distribution)"
    (dest / "src" / "cachetools.egg-info").mkdir()  # what `pip install -e .` writes stays out of status
    (dest / "src" / "cachetools.egg-info" / "PKG-INFO").write_text("x")
    st = subprocess.run(["git", "-C", str(dest), "status", "--porcelain"], capture_output=True, text=True)
    assert st.stdout == ""


def test_bad_version_and_bad_name_say_what_the_index_offers(tmp_path: Path) -> None:
    with pytest.raises(RepoError) as info:
        pypi.sdist_repo("cachetools", "5.5.15", cache=tmp_path)
    msg = str(info.value)
    assert msg.startswith("pypi:cachetools==5.5.15: no such release; the index offers ")
    assert "nearest to 5.5.15: 5.5.0, 5.5.1, 5.5.2, 6.0.0, 6.1.0, 6.2.0" in msg, msg
    assert "newest: " in msg and pypi.release_versions("cachetools")[-1] in msg
    with pytest.raises(RepoError, match="no source distribution of 'srl-swe-no-such-package-x'"):
        pypi.sdist_repo("srl-swe-no-such-package-x", "1.0", cache=tmp_path)


def test_release_versions_sorted_with_sdists() -> None:
    vs = pypi.release_versions("cachetools")
    assert {"5.5.1", "5.5.2", "5.0.0"} <= set(vs)
    assert vs.index("5.5.1") < vs.index("5.5.2") < vs.index("6.0.0")


def test_swebench_row_over_a_release() -> None:
    """marshmallow-1867's row on marshmallow 3.13.0 from the index: the Python diffs apply (with offsets), the
    changelog hunk (the sdist's changelog is in another state) is dropped and named."""
    from conftest import shared_fixture

    from envs.recipes import row_over_release

    rows = json.loads(shared_fixture("repos", "marshmallow-code__marshmallow.tasks.json").read_text())
    (row,) = [r for r in rows if r["instance_id"] == "marshmallow-code__marshmallow-1867"]
    moved = row_over_release(row, "marshmallow", "3.13.0")
    _, commit = pypi.sdist_repo("marshmallow", "3.13.0")
    assert moved["repo_source"] == "pypi:marshmallow==3.13.0" and moved["base_commit"] == commit
    assert moved["metadata"]["dropped_files"] == ["CHANGELOG.rst"]
    assert "src/marshmallow/fields.py" in moved["patch"] and "CHANGELOG" not in moved["patch"]
    assert moved["test_patch"] == row["test_patch"] and moved["FAIL_TO_PASS"] == row["FAIL_TO_PASS"]
    broken = dict(row, patch=row["patch"].replace("\n     def _deserialize(", "\n     def _deserialise("))
    assert broken["patch"] != row["patch"]
    with pytest.raises(
        RecipeError, match="diff of src/marshmallow/fields.py does not apply to marshmallow 3.13.0"
    ):
        row_over_release(broken, "marshmallow", "3.13.0")


RELEASE_TASK = {
    "instance_id": "cachetools-5.5.2",
    "repo": "cachetools",
    "recipe": release_recipe(
        "cachetools",
        "5.5.1",
        "5.5.2",
        ["src/cachetools/__init__.py", "src/cachetools/_decorators.py"],
        ["tests/test_cached.py"],
    ),  # fmt: skip
    "FAIL_TO_PASS": ["tests/test_cached.py::CacheWrapperTest::test_decorator_lock_info"],
}


def test_task_file_with_a_release_recipe_loads_with_patches(cachetools_552, tmp_path: Path) -> None:
    _, base = pypi.sdist_repo("cachetools", "5.5.1")
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({**RELEASE_TASK, "base_commit": base}))
    res = load_tasks(str(tmp_path / "t.yaml"))
    assert not res.errors, res.errors
    (t,) = res.tasks
    assert t.repo_source == "pypi:cachetools==5.5.1" and t.base_commit == base
    assert t.gold_files == ["src/cachetools/__init__.py", "src/cachetools/_decorators.py"]
    assert t.test_files == ["tests/test_cached.py"] and "def test_decorator_lock_info" in t.test_patch
    # Written back, the file stores the recipe and the base commit, not the patches.
    from envs.sources import write_task

    data = yaml.safe_load(write_task(t, tmp_path / "again" / "t.yaml").read_text())
    assert data["recipe"] == RELEASE_TASK["recipe"] and data["base_commit"] == base
    assert "patch" not in data and "test_patch" not in data and "repo_source" not in data
    assert load_tasks(str(tmp_path / "again")).tasks == [t]


def test_recipe_that_cannot_be_materialized_is_a_load_error(tmp_path: Path, monkeypatch) -> None:
    """Offline with a cold cache: the load error names the file, the field `recipe` and what failed."""
    monkeypatch.setenv("SRL_SWE_CACHE", str(tmp_path / "cold"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip may not ask any index: as offline as it gets
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nothing"))
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({**RELEASE_TASK, "base_commit": "a" * 40}))
    res = load_tasks(str(path))
    assert res.tasks == []
    (err,) = res.errors
    assert err.location == str(path) and err.field == "recipe"
    assert "cannot materialize the release recipe: pypi:cachetools==5.5.1" in err.message


def test_mine_cli_input_errors() -> None:
    from typer.testing import CliRunner

    from harness.cli_task import task_app

    runner = CliRunner()
    res = runner.invoke(task_app, ["mine"])
    assert res.exit_code == 2 and "missing REPO" in res.output
    res = runner.invoke(task_app, ["mine", "some/dir", "--pypi", "cachetools"])
    assert res.exit_code == 2 and "not both" in res.output
    res = runner.invoke(task_app, ["mine", "--pypi", "cachetools", "--versions", "5.5.2"])
    assert res.exit_code == 2 and "expected A..B" in res.output
    res = runner.invoke(task_app, ["mine", "--pypi", "cachetools", "--versions", "5.5.2..5.5.2"])
    assert res.exit_code == 2 and "need two or more" in " ".join(res.output.split())


# ------------------------------------------------------------------------------------------ docker


@pytest.mark.docker
@pytest.mark.slow
def test_mine_pypi_writes_a_validated_recipe_task(docker_client, base_image, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli_task import task_app

    out = tmp_path / "pack"
    res = CliRunner().invoke(
        task_app,
        ["mine", "--pypi", "cachetools", "--versions", "5.5.1..5.5.2", "--out", str(out), "--runs", "2"],
    )
    assert res.exit_code == 0, res.output
    assert "1 task(s) from 1 candidate(s)" in res.output
    data = yaml.safe_load((out / "cachetools-5.5.2.yaml").read_text())
    assert data["recipe"] == RELEASE_TASK["recipe"]
    assert "patch" not in data and "test_patch" not in data
    assert data["problem_statement_source"] == "changelog"
    assert "Reduce number of ``@cached`` lock/unlock operations." in data["problem_statement"]
    assert data["FAIL_TO_PASS"] == RELEASE_TASK["FAIL_TO_PASS"]
    assert "tests/test_cached.py::CacheWrapperTest::test_decorator_lock" in data["PASS_TO_PASS"]
    again = CliRunner().invoke(
        task_app, ["mine", "--pypi", "cachetools", "--versions", "5.5.1..5.5.2", "--out", str(out)]
    )
    assert "0 task(s) from 0 candidate(s)" in again.output  # the existing task is not mined twice
