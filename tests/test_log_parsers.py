"""Log parsers: literal logs, and agreement with the official swebench pytest parser on real pytest output."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.log_parsers import (
    ERROR,
    FAILED,
    PASSED,
    SKIPPED,
    XFAIL,
    XPASS,
    get_parser,
    mangle_pytest_nodeid,
    normalize_unittest_id,
    parse_junit,
    parse_pytest,
    parse_unittest,
    parser_names,
    read_junit,
    register_parser,
    split_summary_rest,
)

PYTEST_LOG = textwrap.dedent(
    """\
    ============================= test session starts ==============================
    collected 14 items

    tests/test_a.py .F.                                                      [100%]

    =================================== FAILURES ===================================
    ___________________________________ test_fail __________________________________
    E   assert 1 == 2
    ----------------------------- Captured stdout call -----------------------------
    PASSED this is printed output, not a result line
    =========================== short test summary info ============================
    PASSED tests/test_a.py::test_pass
    PASSED tests/test_a.py::test_param[a b]
    PASSED tests/test_a.py::test_param[[br]]
    PASSED tests/test_a.py::test_param[a]b]
    PASSED tests/test_a.py::TestK::test_m
    PASSED tests/test_a.py::test_teardown_error
    SKIPPED [1] tests/test_a.py:5: nope
    XFAIL tests/test_a.py::test_xfail - known
    XPASS tests/test_a.py::test_xpass - known ok
    ERROR tests/test_a.py::test_setup_error - RuntimeError: setup
    ERROR tests/test_a.py::test_teardown_error - RuntimeError: teardown
    FAILED tests/test_a.py::test_fail - assert 1 == 2
    FAILED tests/test_a.py::test_param[x - y] - AssertionError: assert 'x - y' != 'x...
    ERROR tests/test_broken.py - ModuleNotFoundError: No module named 'nope'
    ==== 3 failed, 7 passed, 1 skipped, 1 xfailed, 1 xpassed, 2 errors in 0.74s ====
    """
)


def test_pytest_summary_lines() -> None:
    sm = parse_pytest(PYTEST_LOG)
    assert sm["tests/test_a.py::test_pass"] == PASSED
    assert sm["tests/test_a.py::test_param[a b]"] == PASSED
    assert sm["tests/test_a.py::test_param[[br]]"] == PASSED
    assert sm["tests/test_a.py::test_param[a]b]"] == PASSED
    assert sm["tests/test_a.py::TestK::test_m"] == PASSED
    assert sm["tests/test_a.py::test_xfail"] == XFAIL
    assert sm["tests/test_a.py::test_xpass"] == XPASS
    assert sm["tests/test_a.py::test_setup_error"] == ERROR
    assert sm["tests/test_a.py::test_fail"] == FAILED
    assert sm["tests/test_a.py::test_param[x - y]"] == FAILED
    # a collection error names the module
    assert sm["tests/test_broken.py"] == ERROR
    # the skip summary names no test
    assert not any(k.startswith("[") for k in sm)
    # like the reference, any line starting with a status word counts: captured output can look like a
    # result line, which is why grading cross-checks the log with a JUnit file and the exit code
    assert sm["this is printed output, not a result line"] == PASSED


def test_pytest_teardown_error_beats_pass() -> None:
    assert parse_pytest(PYTEST_LOG)["tests/test_a.py::test_teardown_error"] == ERROR
    reversed_order = "ERROR t.py::test_x - boom\nPASSED t.py::test_x\n"
    assert parse_pytest(reversed_order) == {"t.py::test_x": ERROR}


def test_pytest_verbose_lines_give_skipped_ids() -> None:
    log = textwrap.dedent(
        """\
        tests/test_a.py::test_pass PASSED                                        [  7%]
        tests/test_a.py::test_skip SKIPPED (nope)                                [ 21%]
        tests/test_a.py::test_xfail XFAIL (known)                                [ 28%]
        tests/test_a.py::test_param[a b] PASSED                                  [ 50%]
        tests/test_a.py::test_param[x - y] FAILED                                [ 57%]
        """
    )
    assert parse_pytest(log) == {
        "tests/test_a.py::test_pass": PASSED,
        "tests/test_a.py::test_skip": SKIPPED,
        "tests/test_a.py::test_xfail": XFAIL,
        "tests/test_a.py::test_param[a b]": PASSED,
        "tests/test_a.py::test_param[x - y]": FAILED,
    }


def test_pytest_ansi_and_crlf() -> None:
    log = "\x1b[32mPASSED\x1b[0m t.py::test_a\r\nFAILED t.py::test_b - x\r\n"
    assert parse_pytest(log) == {"t.py::test_a": PASSED, "t.py::test_b": FAILED}


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ("t.py::test_x", "t.py::test_x"),
        ("t.py::test_x - boom - again", "t.py::test_x"),
        ("t.py::test_x[a - b] - boom", "t.py::test_x[a - b]"),
        ("t.py::test_x[a b]", "t.py::test_x[a b]"),
        ("t.py::test_x[a]b] - boom", "t.py::test_x[a]b]"),
        ("t.py::test_x[a - b - c]", "t.py::test_x[a - b - c]"),
    ],
)
def test_split_summary_rest(rest: str, expected: str) -> None:
    assert split_summary_rest(rest) == expected


UNITTEST_LOG = textwrap.dedent(
    """\
    test_add (tests.test_math.MathTest.test_add) ... ok
    test_div (tests.test_math.MathTest) ... FAIL
    test_err (tests.test_math.MathTest) ... ERROR
    test_skip (tests.test_math.MathTest) ... skipped 'not today'
    test_xf (tests.test_math.MathTest) ... expected failure
    test_us (tests.test_math.MathTest) ... unexpected success
    test_doc (tests.test_math.MathTest)
    Adding two numbers works. ... ok
    test_noisy (tests.test_math.MathTest) ... some printed output
    ok

    ======================================================================
    FAIL: test_div (tests.test_math.MathTest)
    ----------------------------------------------------------------------
    Traceback (most recent call last):
    AssertionError: 1 != 2

    ----------------------------------------------------------------------
    Ran 8 tests in 0.003s

    FAILED (failures=1, errors=1, skipped=1, expected failures=1, unexpected successes=1)
    """
)


def test_unittest() -> None:
    sm = parse_unittest(UNITTEST_LOG)
    assert sm["test_add (tests.test_math.MathTest)"] == PASSED
    assert sm["test_div (tests.test_math.MathTest)"] == FAILED
    assert sm["test_err (tests.test_math.MathTest)"] == ERROR
    assert sm["test_skip (tests.test_math.MathTest)"] == SKIPPED
    assert sm["test_xf (tests.test_math.MathTest)"] == XFAIL
    assert sm["test_us (tests.test_math.MathTest)"] == FAILED
    # docstring tests are known by both names (SWE-bench names them by the docstring)
    assert sm["Adding two numbers works."] == PASSED
    assert sm["test_doc (tests.test_math.MathTest)"] == PASSED
    assert sm["test_noisy (tests.test_math.MathTest)"] == PASSED


def test_unittest_failure_header_overrides_ok() -> None:
    log = "test_a (m.C) ... ok\n\n======\nERROR: test_a (m.C)\n------\nTraceback\n"
    assert parse_unittest(log) == {"test_a (m.C)": ERROR}


def test_normalize_unittest_id() -> None:
    assert normalize_unittest_id("test_a (pkg.mod.C.test_a)") == "test_a (pkg.mod.C)"
    assert normalize_unittest_id("test_a (pkg.mod.C)") == "test_a (pkg.mod.C)"
    assert normalize_unittest_id("free text") == "free text"


def test_unittest_real_output(tmp_path: Path) -> None:
    (tmp_path / "test_u.py").write_text(
        textwrap.dedent(
            """\
            import unittest

            class T(unittest.TestCase):
                def test_ok(self):
                    pass
                def test_fail(self):
                    self.assertEqual(1, 2)
                def test_doc(self):
                    '''A documented test.'''
                @unittest.skip("why")
                def test_skip(self):
                    pass
                @unittest.expectedFailure
                def test_xf(self):
                    self.assertEqual(1, 2)
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "unittest", "-v", "test_u"], cwd=tmp_path, capture_output=True, text=True
    )
    sm = parse_unittest(proc.stdout + proc.stderr)
    assert sm["test_ok (test_u.T)"] == PASSED
    assert sm["test_fail (test_u.T)"] == FAILED
    assert sm["test_doc (test_u.T)"] == PASSED
    assert sm["A documented test."] == PASSED
    assert sm["test_skip (test_u.T)"] == SKIPPED
    assert sm["test_xf (test_u.T)"] == XFAIL


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_a" name="test_pass" file="tests/test_a.py" />
<testcase classname="tests.test_a" name="test_fail"><failure message="x">boom</failure></testcase>
<testcase classname="tests.test_a" name="test_skip"><skipped type="pytest.skip" message="nope"/></testcase>
<testcase classname="tests.test_a" name="test_xfail"><skipped type="pytest.xfail" message="k"/></testcase>
<testcase classname="tests.test_a" name="test_param[a b]" />
<testcase classname="tests.test_a.TestK" name="test_m" />
<testcase classname="tests.test_a" name="test_td"><error message="teardown">x</error></testcase>
<testcase classname="" name="tests.test_broken"><error message="collection failure">x</error></testcase>
</testsuite></testsuites>"""


def test_junit() -> None:
    sm = parse_junit(JUNIT)
    assert sm == {
        "tests.test_a::test_pass": PASSED,
        "tests.test_a::test_fail": FAILED,
        "tests.test_a::test_skip": SKIPPED,
        "tests.test_a::test_xfail": XFAIL,
        "tests.test_a::test_param[a b]": PASSED,
        "tests.test_a.TestK::test_m": PASSED,
        "tests.test_a::test_td": ERROR,
        "tests.test_broken": ERROR,
    }
    assert parse_junit("not xml at all") == {}
    with pytest.raises(ValueError, match="not a JUnit XML"):
        read_junit("<unclosed")


def test_mangle_matches_junit_keys() -> None:
    cases = read_junit(JUNIT)
    for nodeid in [
        "tests/test_a.py::test_pass",
        "tests/test_a.py::test_param[a b]",
        "tests/test_a.py::TestK::test_m",
        "tests/test_broken.py",
    ]:
        assert mangle_pytest_nodeid(nodeid) in cases


def test_mangle_keeps_colons_in_parameters() -> None:
    assert mangle_pytest_nodeid("tests/t.py::TestC::test_ip[ff::aa:1::2]") == (
        "tests.t.TestC",
        "test_ip[ff::aa:1::2]",
    )
    assert mangle_pytest_nodeid("t.py::test_x[a/b.py]") == ("t", "test_x[a/b.py]")


def test_registry() -> None:
    assert {"pytest", "unittest", "junit"} <= set(parser_names())
    assert get_parser("pytest") is parse_pytest
    with pytest.raises(KeyError, match="unknown log parser 'nope'; expected one of: .*pytest"):
        get_parser("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_parser("pytest")(lambda log: {})


# ------------------------------------------------------------------------- real logs vs. swebench

REAL_TESTS = {
    "tests/test_demo.py": """\
        import pytest

        def test_pass():
            pass

        def test_fail():
            assert 1 == 2

        @pytest.mark.skip(reason="nope")
        def test_skip():
            pass

        @pytest.mark.xfail(reason="known")
        def test_xfail():
            assert 0

        @pytest.mark.xfail(reason="known ok")
        def test_xpass():
            pass

        @pytest.mark.xfail(strict=True)
        def test_xpass_strict():
            pass

        @pytest.mark.parametrize("v", ["plain", "a b", "x - y", "[br]", "a]b", "u\\u00fc", "ff::aa:1::2", "a/b.py"])
        def test_param(v):
            assert v != "x - y"

        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_num(n):
            assert n != 2

        @pytest.fixture
        def broken():
            raise RuntimeError("setup")

        def test_setup_error(broken):
            pass

        @pytest.fixture
        def td():
            yield
            raise RuntimeError("teardown")

        def test_teardown_error(td):
            pass

        class TestK:
            def test_m(self):
                print("PASSED fake")

            def test_n(self):
                raise ValueError("x")
        """,
    "tests/test_broken.py": """\
        import nonexistent_module_for_srl

        def test_never():
            pass
        """,
}

# Node ids where the swebench 5.0.2 parser is wrong; each has its own named test below.
_SPACE_IDS = {"tests/test_demo.py::test_param[a b]", "tests/test_demo.py::test_param[x - y]"}
_XPASS_IDS = {"tests/test_demo.py::test_xpass"}


@pytest.fixture(scope="module")
def real_pytest_logs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Real pytest -rA output: the whole suite (with --continue-on-collection-errors) and one module."""
    root = tmp_path_factory.mktemp("real")
    for rel, body in REAL_TESTS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(body))
    logs = []
    for n, args in enumerate(
        (["--continue-on-collection-errors", "tests"], ["tests/test_demo.py"], ["tests/test_broken.py"])
    ):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-rA",
                "-p",
                "no:cacheprovider",
                f"--junitxml=junit{n}.xml",
                "-o",
                "junit_family=xunit1",
                *args,
            ],
            cwd=root,
            capture_output=True,
            text=True,
        )
        logs.append(proc.stdout + proc.stderr)
    real_junit.extend((root / f"junit{n}.xml").read_text() for n in range(3))
    return logs


real_junit: list[str] = []


def _reference(log: str) -> dict[str, str]:
    from swebench.harness.log_parsers.python import parse_log_pytest

    return parse_log_pytest(log, None)


def test_agrees_with_swebench_on_real_logs(real_pytest_logs: list[str]) -> None:
    for log in real_pytest_logs:
        ours = parse_pytest(log)
        ref = _reference(log)
        assert ours, log
        wrong_in_ref = {k for k in ref if any(full.startswith(k) and full != k for full in _SPACE_IDS)}
        expected = {k: v for k, v in ref.items() if k not in wrong_in_ref}
        ours_comparable = {k: v for k, v in ours.items() if k not in _SPACE_IDS | _XPASS_IDS}
        assert ours_comparable == expected
    full = parse_pytest(real_pytest_logs[0])
    assert full["tests/test_demo.py::test_num[2]"] == FAILED
    assert full["tests/test_demo.py::test_num[1]"] == PASSED
    assert full["tests/test_demo.py::TestK::test_n"] == FAILED
    assert full["tests/test_demo.py::test_xpass_strict"] == FAILED
    assert full["tests/test_demo.py::test_param[u\\xfc]"] == PASSED
    assert full["tests/test_broken.py"] == ERROR
    assert parse_pytest(real_pytest_logs[2]) == {"tests/test_broken.py": ERROR}


def test_log_ids_map_onto_real_junit_files(real_pytest_logs: list[str]) -> None:
    """Every test the log names is found in pytest's own JUnit file with the same outcome."""
    from harness.grading import PASSING

    for log, xml in zip(real_pytest_logs, real_junit, strict=True):
        cases = read_junit(xml)
        for test, status in parse_pytest(log).items():
            key = mangle_pytest_nodeid(test)
            # TestK.test_m prints "PASSED fake"; -rA shows it; only the JUnit file knows better
            if test == "fake":
                assert key not in cases
                continue
            assert key in cases, (test, sorted(cases))
            assert (cases[key] in PASSING) == (status in PASSING), (test, status, cases[key])


def test_reference_cuts_ids_at_first_space(real_pytest_logs: list[str]) -> None:
    """swebench 5.0.2 splits on whitespace: ``test_param[a b]`` becomes ``test_param[a``."""
    ref, ours = _reference(real_pytest_logs[1]), parse_pytest(real_pytest_logs[1])
    assert "tests/test_demo.py::test_param[a" in ref
    assert "tests/test_demo.py::test_param[a b]" not in ref
    assert ours["tests/test_demo.py::test_param[a b]"] == PASSED


def test_reference_mangles_dash_ids_of_failures(real_pytest_logs: list[str]) -> None:
    """swebench 5.0.2 replaces every ``" - "`` in a FAILED line: ``test_param[x - y]`` becomes ``test_param[x``."""
    ref, ours = _reference(real_pytest_logs[1]), parse_pytest(real_pytest_logs[1])
    assert ref.get("tests/test_demo.py::test_param[x") == FAILED
    assert "tests/test_demo.py::test_param[x - y]" not in ref
    assert ours["tests/test_demo.py::test_param[x - y]"] == FAILED


def test_reference_drops_xpass(real_pytest_logs: list[str]) -> None:
    """swebench 5.0.2 has no XPASS status, so an xpassed test is missing (= failed) there; pytest passes it."""
    ref, ours = _reference(real_pytest_logs[1]), parse_pytest(real_pytest_logs[1])
    assert "tests/test_demo.py::test_xpass" not in ref
    assert ours["tests/test_demo.py::test_xpass"] == XPASS
