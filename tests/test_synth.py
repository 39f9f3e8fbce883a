"""Synthesized tasks: AST mutation sites, their text edits, the inverse patch, the problem statement
(unit), and a real synthesis on a release from the package index that validates (docker)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from envs.synth import (
    KINDS,
    SynthError,
    apply_mutation,
    diff_commits,
    enumerate_mutations,
    find_site,
    is_source_file,
    make_recipe,
    problem_statement,
    recipe_id,
)

SRC = textwrap.dedent(
    '''
    """A module."""

    LIMIT = 10


    def total(xs, scale=2):
        """Sum of the items below the limit, scaled."""
        acc = 0
        for i in range(len(xs)):
            if xs[i] < LIMIT and not xs[i] == 0:
                acc += xs[i] * scale
        print(xs[1:3], "ab")
        return acc


    class Box:
        def pick(self, a, b, flag=True):
            return max(a, b) if flag else min(a, b)
    '''
)


def _sites(kind: str, function: str | None = None):
    return [
        s for s in enumerate_mutations(SRC, "pkg/mod.py") if s.kind == kind and function in (None, s.function)
    ]


def _edits(kind: str) -> set[tuple[str, str]]:
    return {(s.original, s.replacement) for s in _sites(kind)}


def test_every_kind_has_sites_and_each_edit_compiles():
    sites = enumerate_mutations(SRC, "pkg/mod.py")
    assert {s.kind for s in sites} == set(KINDS)
    for s in sites:
        mutated = apply_mutation(SRC, s)
        assert mutated != SRC
        compile(mutated, s.path, "exec")
        # a minimal text edit: outside the edited span nothing changes
        assert mutated[: s.start] == SRC[: s.start]
        assert mutated[s.start + len(s.replacement) :] == SRC[s.end :]
    assert {s.function for s in sites} == {"total", "Box.pick"}  # module level is never mutated


def test_swap_operator():
    assert {("<", "<="), ("and", "or"), ("==", "!="), ("+=", "-="), ("*", "/")} <= _edits("swap_operator")
    s = next(s for s in _sites("swap_operator") if s.original == "+=")
    assert "            acc -= xs[i] * scale\n" in apply_mutation(SRC, s)


def test_invert_condition():
    edits = _edits("invert_condition")
    assert ("xs[i] < LIMIT and not xs[i] == 0", "not (xs[i] < LIMIT and not xs[i] == 0)") in edits
    assert ("flag", "not flag") in edits  # conditional expression


def test_shift_bound():
    edits = _edits("shift_bound")
    assert ("len(xs)", "len(xs) - 1") in edits  # range(n) -> range(n - 1)
    assert ("i", "i + 1") in edits  # xs[i] -> xs[i + 1]
    assert ("1", "2") in edits and ("3", "2") in edits  # slice bounds
    assert ("0", "1") in edits  # the integer a comparison uses


def test_drop_statement_never_first_only_or_docstring():
    dropped = [s.original.strip() for s in _sites("drop_statement")]
    assert 'print(xs[1:3], "ab")' in dropped and "return acc" in dropped
    assert "acc = 0" not in dropped  # first statement after the docstring
    assert not any(d.startswith('"""') for d in dropped)
    assert not any("max(a, b)" in d for d in dropped)  # the only statement of pick
    # whole lines go, the gold patch is a pure re-insertion
    s = next(s for s in _sites("drop_statement") if s.original.strip() == "return acc")
    assert s.original == "    return acc\n"


def test_swap_arguments_and_change_constant():
    assert {('xs[1:3], "ab"', '"ab", xs[1:3]'), ("a, b", "b, a")} <= _edits("swap_arguments")
    consts = _edits("change_constant")
    assert ("2", "3") in consts  # a default argument
    assert ("True", "False") in consts
    assert ('"ab"', '"ba"') in consts
    assert not any(o == "10" for o, _ in consts)  # module level


def test_positions_after_non_ascii_text():
    src = "def f(s):\n    t = 'héllo wörld' + s\n    return t < 'zz'\n"
    for s in enumerate_mutations(src, "m.py"):
        assert src[s.start : s.end] == s.original
        compile(apply_mutation(src, s), "m.py", "exec")
    ops = {(s.original, s.replacement) for s in enumerate_mutations(src, "m.py") if s.kind == "swap_operator"}
    assert ops == {("+", "-"), ("<", "<=")}


def test_operator_found_across_lines_comments_and_parentheses():
    src = "def f(a, b):\n    return ((a)  # left\n            + (b))\n"
    (s,) = [s for s in enumerate_mutations(src, "m.py") if s.kind == "swap_operator"]
    assert apply_mutation(src, s) == "def f(a, b):\n    return ((a)  # left\n            - (b))\n"


def test_sites_are_deterministic_and_found_again_by_recipe_fields():
    a = enumerate_mutations(SRC, "pkg/mod.py")
    b = enumerate_mutations(SRC, "pkg/mod.py")
    assert a == b
    for s in a:
        assert find_site(SRC, "pkg/mod.py", s.function, s.kind, s.index) == s
    # indices count within (function, kind) in source order
    idx = [s.index for s in _sites("swap_operator", "total")]
    assert idx == list(range(len(idx)))
    starts = [s.start for s in _sites("swap_operator", "total")]
    assert starts == sorted(starts)
    # the same recipe always names the same task; the id names neither file nor function
    r = make_recipe("pkg", "1.0", a[3], seed=7)
    assert recipe_id(r) == recipe_id(dict(r, seed=8)) and re.fullmatch(
        r"pkg-1\.0-synth-[0-9a-f]{8}", recipe_id(r)
    )


def test_find_site_errors_name_what_is_wrong():
    with pytest.raises(SynthError, match="no such function.*functions: Box.pick, total"):
        find_site(SRC, "pkg/mod.py", "nope", "swap_operator", 0)
    with pytest.raises(SynthError, match="index 99"):
        find_site(SRC, "pkg/mod.py", "total", "swap_operator", 99)
    with pytest.raises(SynthError, match="'mutation': expected one of"):
        find_site(SRC, "pkg/mod.py", "total", "flip", 0)
    s = _sites("swap_operator")[0]
    with pytest.raises(SynthError, match="does not match"):
        apply_mutation(SRC.replace("<", ">"), s)


def test_source_files_exclude_tests_docs_and_build_scripts():
    assert is_source_file("toolz/itertoolz.py") and is_source_file("src/pkg/a.py")
    for path in (
        "tests/test_a.py",
        "pkg/tests/util.py",
        "setup.py",
        "docs/conf.py",
        "versioneer.py",
        "x.txt",
    ):
        assert not is_source_file(path), path


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout


def test_inverse_patch_applies_back_to_the_original(tmp_path: Path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    _git(tmp_path, "init", "-q", str(repo))
    _git(repo, "config", "user.email", "t@example.invalid")
    _git(repo, "config", "user.name", "t")
    (repo / "pkg/mod.py").write_text(SRC)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "release")
    release = _git(repo, "rev-parse", "HEAD").strip()
    for site in [s for k in KINDS for s in _sites(k)[:2]]:
        (repo / "pkg/mod.py").write_text(apply_mutation(SRC, site))
        _git(repo, "commit", "-qam", "mutated")
        mutated = _git(repo, "rev-parse", "HEAD").strip()
        gold = diff_commits(repo, mutated, release, "pkg/mod.py")
        changed = [ln for ln in gold.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
        assert 1 <= len(changed) <= 10, site.describe()  # a few lines
        subprocess.run(["git", "-C", str(repo), "apply", "-"], input=gold, text=True, check=True)
        assert (repo / "pkg/mod.py").read_text() == SRC
        _git(repo, "reset", "-q", "--hard", release)


LIB = textwrap.dedent(
    """
    def clamp(x, lo, hi):
        if x < lo:
            return lo
        if x > hi:
            return hi
        return x
    """
)
TESTS = textwrap.dedent(
    """
    from mylib import clamp

    def test_bounds():
        assert clamp(15, 0, 10) == 10

    def test_inside():
        assert clamp(5, 0, 10) == 5

    def test_kinds():
        assert clamp(-3, 0, 10) == 0
    """
)


def test_problem_statement_from_real_pytest_output_hides_the_location(tmp_path: Path):
    site = next(
        s
        for s in enumerate_mutations(LIB, "mylib.py")
        if s.kind == "invert_condition" and s.original == "x > hi"
    )
    (tmp_path / "mylib.py").write_text(apply_mutation(LIB, site))
    (tmp_path / "test_lib.py").write_text(TESTS)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "--tb=short", "-l", "test_lib.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert "where 15 = clamp(15, 0, 10)" in proc.stdout  # pytest itself names the function
    failing = ["test_lib.py::test_bounds", "test_lib.py::test_inside"]
    text = problem_statement("mylib", failing, proc.stdout, hide=["clamp", "mylib.py"])
    assert "`test_lib.py::test_bounds` fails" in text and "`test_lib.py::test_inside` fails" in text
    assert "assert 10 == 5" in text or "assert 5 == 10" in text or "== 5" in text  # observed vs expected
    assert "clamp" not in text and "mylib.py" not in text
    assert "2 tests of the mylib test suite fail" in text


def test_problem_statement_keeps_a_name_that_a_test_name_contains():
    output = textwrap.dedent(
        """
        =================================== FAILURES ===================================
        __________________________________ test_pick ___________________________________
        t/test_a.py:4: in test_pick
            assert pick(1, 2) == 2
        pkg/a.py:3: in pick
            return min(a, b)
        E   assert 1 == 2
        E    +  where 1 = pick(1, 2)
        ==================================== PASSES ====================================
        PASSED t/test_a.py::test_ok
        =========================== short test summary info ============================
        FAILED t/test_a.py::test_pick - assert 1 == 2
        """
    )
    text = problem_statement("pkg", ["t/test_a.py::test_pick"], output, hide=["pick", "pkg/a.py", "a.py"])
    assert "assert pick(1, 2) == 2" in text and "where 1 = pick(1, 2)" in text
    assert "return min(a, b)" not in text  # frames in the package's own files are not shown
    assert "PASSES" not in text and "test_ok" not in text
    hidden = problem_statement(
        "pkg",
        ["t/test_a.py::test_other"],
        output.replace("test_pick", "test_other"),
        hide=["pick", "pkg/a.py", "a.py"],
    )
    assert "pick" not in hidden and "assert 1 == 2" in hidden


def test_bad_release_is_a_clear_error(tmp_path: Path):
    from harness.synth_runner import SynthRunError, parse_release, synthesize

    with pytest.raises(SynthRunError, match="expected NAME==VERSION"):
        parse_release("toolz>=1")
    assert parse_release("toolz==1.0.0") == parse_release("pypi:toolz==1.0.0") == ("toolz", "1.0.0")
    # the index answers with what it offers (no Docker needed: nothing is built)
    with pytest.raises(SynthRunError, match=r"toolz==0\.0\.0: no such release; the index offers .*1\.0\.0"):
        synthesize("toolz==0.0.0", tmp_path / "out", client=object())


def test_cli_rejects_a_bad_release_and_an_unknown_kind():
    from typer.testing import CliRunner

    from harness.cli_task import task_app

    runner = CliRunner()
    res = runner.invoke(task_app, ["synth", "--pypi", "toolz"])
    assert res.exit_code == 2 and "expected NAME==VERSION" in res.output
    res = runner.invoke(task_app, ["synth", "--pypi", "toolz==1.0.0", "--kind", "flip"])
    assert res.exit_code == 2 and "--kind flip: expected one of swap_operator" in res.output


@pytest.mark.docker
def test_synth_on_a_real_release_writes_a_task_that_validates(docker_client, tmp_path: Path):
    from envs.pypi import sdist_repo
    from envs.sources import load_tasks
    from harness.synth_runner import synthesize
    from harness.validate import validate_tasks

    pack = tmp_path / "pack"
    report = synthesize("toolz==1.0.0", pack, n=1, seed=0, max_tries=20, client=docker_client)
    assert report.kept == 1 and report.tried >= 1 and report.baseline_passing > 100
    assert any(not a.kept for a in report.attempts) or report.tried == 1
    (path,) = report.written
    text = path.read_text()
    assert "\npatch:" not in text and "\nrecipe:" in text  # the file stores the recipe, not the patch
    loaded = load_tasks(str(pack))
    assert not loaded.errors, loaded.errors
    (spec,) = loaded.tasks
    recipe = spec.recipe
    assert {"package", "version", "file", "function", "mutation", "index", "seed"} <= set(recipe)
    assert spec.gold_files == [recipe["file"]] and spec.FAIL_TO_PASS and spec.PASS_TO_PASS
    name = recipe["function"].rsplit(".", 1)[-1]
    if not any(name in t for t in spec.FAIL_TO_PASS):
        assert name not in spec.problem_statement
    assert recipe["file"] not in spec.problem_statement
    assert "`" + spec.FAIL_TO_PASS[0] + "` fails" in spec.problem_statement
    repo, _ = sdist_repo("toolz", "1.0.0")
    assert _git(repo, "rev-list", "--count", spec.base_commit).strip() == "1"  # no history to peek at
    (res,) = validate_tasks([spec], client=docker_client)
    assert res.valid, res.problems
    # a repeated (or interrupted) run keeps what it finished: the same seed tries the same sites in the
    # same order, and the kept one is found on disk instead of being tried again
    again = synthesize("toolz==1.0.0", pack, n=1, seed=0, max_tries=20, client=docker_client)
    assert again.kept == 1 and again.existing == 1 and not again.written
    assert [a.site for a in again.attempts] == [a.site for a in report.attempts if not a.kept]


def test_materialize_a_recipe_from_the_index_gives_a_root_commit_and_the_inverse_patch(tmp_path: Path):
    from envs.pypi import read_file, sdist_repo
    from envs.synth import materialize_synth

    recipe = {
        "kind": "synth",
        "package": "toolz",
        "version": "1.0.0",
        "file": "toolz/itertoolz.py",
        "function": "_merge_sorted_binary",
        "mutation": "swap_operator",
        "index": 0,
        "seed": 0,
    }
    out = materialize_synth(recipe)
    assert materialize_synth(dict(recipe)) == out  # deterministic
    assert out["repo_source"] == "pypi:toolz==1.0.0" and out["test_patch"] == ""
    repo, release = sdist_repo("toolz", "1.0.0")
    # one commit, no parent: the agent's repository cannot show the original with `git diff HEAD~1`
    assert _git(repo, "rev-list", "--count", out["base_commit"]).strip() == "1"
    assert _git(repo, "log", "-1", "--format=%s", out["base_commit"]) == "toolz 1.0.0 (source distribution)\n"
    assert "-    mid = len(seqs) % 2\n+    mid = len(seqs) // 2\n" in out["patch"]
    work = tmp_path / "w"
    subprocess.run(["git", "clone", "-q", str(repo), str(work)], check=True)
    _git(work, "checkout", "-q", out["base_commit"])
    subprocess.run(["git", "-C", str(work), "apply", "-"], input=out["patch"], text=True, check=True)
    assert (work / "toolz/itertoolz.py").read_text() == read_file(repo, release, "toolz/itertoolz.py")


def test_problem_statement_shows_values_an_unrewritten_helper_assert_hides(tmp_path: Path):
    """An assert in a test helper module is not rewritten by pytest (a bare ``AssertionError``); the
    test frames' local variables carry the observed and expected values."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "mylib.py").write_text("def joined(a, b):\n    return f'{a}|{b}'\n")
    (tmp_path / "tests/helpers.py").write_text(
        "def assert_equal(expected, result):\n    assert expected == result\n"
    )
    (tmp_path / "tests/test_fmt.py").write_text(
        "import sys\nsys.path[:0] = ['.', 'tests']\nfrom helpers import assert_equal\nfrom mylib import joined\n\n"
        "def test_row():\n    fn = joined\n    expected = 'a | b'\n    result = fn('a', 'b')\n"
        "    assert_equal(expected, result)\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-rA",
            "-p",
            "no:cacheprovider",
            "--tb=short",
            "-l",
            "tests/test_fmt.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert "E   AssertionError\n" in proc.stdout and " at 0x" in proc.stdout
    text = problem_statement(
        "mylib", ["tests/test_fmt.py::test_row"], proc.stdout, hide=["joined", "mylib.py"]
    )
    assert "expected   = 'a | b'" in text and "result     = 'a|b'" in text  # expected vs observed
    assert "joined" not in text and " at 0x" not in text


def test_problem_statement_hides_a_name_inside_other_identifiers_but_not_a_short_one_in_words():
    output = textwrap.dedent(
        """
        ___________________________________ test_x ____________________________________
        t/test_a.py:3: in test_x
            orig_check_valid = make()
            assert together() == get_it()
        E   assert 1 == 2
        """
    )
    text = problem_statement("pkg", ["t/test_a.py::test_x"], output, hide=["check_valid"])
    assert "check_valid" not in text and "assert together() == get_it()" in text
    text = problem_statement("check_valid", ["t/test_a.py::test_x"], output, hide=["check_valid"])
    assert "check_valid" not in text and text.startswith("1 test of the test suite fails")
    text = problem_statement("pkg", ["t/test_a.py::test_x"], output, hide=["get"])
    assert "orig_check_valid = make()" in text and "get_it" not in text


def test_a_failed_subtest_fails_its_test():
    from harness.log_parsers import parse_pytest
    from harness.synth_runner import read_statuses

    output = textwrap.dedent(
        """
        =========================== short test summary info ============================
        PASSED tests/test_threading.py::ThreadingTest::test_cached_lock
        PASSED tests/test_threading.py::ThreadingTest::test_other
        PASSED setup.py::test_not_a_test_file
        SUBFAILED(info=False) tests/test_threading.py::ThreadingTest::test_cached_lock - AssertionError: 0 != 1
        """
    )
    assert read_statuses(output, parse_pytest) == {
        "tests/test_threading.py::ThreadingTest::test_cached_lock": "FAILED",
        "tests/test_threading.py::ThreadingTest::test_other": "PASSED",
    }
