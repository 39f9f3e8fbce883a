"""Tests that kill the one-line mutations of issue 17 which survived the suite.

Each test names the mutation it kills; every one was checked by applying the mutation by hand and
seeing the test fail (docs/development.md, "Mutation testing"). Values are literal, never computed
by the function under test.
"""

from __future__ import annotations

import difflib

import pytest
from rapidfuzz.distance import Indel

from harness import log_parsers
from harness.log_parsers import (
    ERROR,
    FAILED,
    PASSED,
    SKIPPED,
    XFAIL,
    get_parser,
    parse_junit,
    parse_pytest,
    parse_pytest_options,
    read_junit,
    register_parser,
    split_summary_rest,
)
from trajectories.actions import ActionParseError, format_answer, parse_action, parse_answer, render_action
from trajectories.schema import ToolCall
from trajectories.scoring import (
    FORMAT_ERROR_REWARD,
    completion_text,
    make_step_reward_func,
    outcome_reward,
    similarity,
    step_reward,
    step_reward_func,
)

# Two actions whose difflib ratio (greedy matching blocks, 0.800) and rapidfuzz Indel similarity
# (longest common subsequence, 0.848) differ.
EXPERT = render_action(ToolCall(name="bash", arguments={"command": "sed -n 1,40p setup.py"}))
SWAPPED = format_answer("search", ToolCall(name="bash", arguments={"command": "grep -rn foo src tests"}))
_PRED_ACTION = render_action(parse_answer(SWAPPED)[1])
EXPERT_TEXT_DIFFLIB = difflib.SequenceMatcher(None, _PRED_ACTION, EXPERT, autojunk=False).ratio()
EXPERT_TEXT_INDEL = Indel.normalized_similarity(_PRED_ACTION, EXPERT)


def test_the_pair_separates_the_modes():
    """Precondition of the mode tests below: the two modes disagree on this pair."""
    assert step_reward(SWAPPED, EXPERT, mode="exact") == pytest.approx(EXPERT_TEXT_DIFFLIB)
    assert step_reward(SWAPPED, EXPERT, mode="fast") == pytest.approx(EXPERT_TEXT_INDEL)
    assert EXPERT_TEXT_DIFFLIB == pytest.approx(0.8) and EXPERT_TEXT_INDEL > EXPERT_TEXT_DIFFLIB + 0.04


# ---------------------------------------------------------------- scoring: mode reaches step_reward


@pytest.mark.parametrize("mode", ["difflib", "exact", "fast"])
def test_step_reward_func_passes_its_mode_on(mode):
    """Kills: `step_reward_func` calling `step_reward(...)` without ``mode=mode``."""
    got = step_reward_func([SWAPPED], expert_action=[EXPERT], mode=mode)
    assert got == [step_reward(SWAPPED, EXPERT, mode=mode)]


@pytest.mark.parametrize("mode", ["difflib", "exact", "fast"])
def test_make_step_reward_func_passes_its_mode_on(mode):
    """Kills: the bound function of `make_step_reward_func` ignoring its ``mode`` (the training path)."""
    func = make_step_reward_func(mode)
    assert func.__name__ == f"step_reward_{mode}"
    assert func([SWAPPED], expert_action=[EXPERT]) == [step_reward(SWAPPED, EXPERT, mode=mode)]


def test_make_step_reward_func_fast_is_not_the_exact_value():
    """The same, stated without `step_reward` on the right: the fast reward is the LCS value."""
    exact = make_step_reward_func("exact")([SWAPPED], expert_action=[EXPERT])[0]
    fast = make_step_reward_func("fast")([SWAPPED], expert_action=[EXPERT])[0]
    assert exact == pytest.approx(EXPERT_TEXT_DIFFLIB)
    assert fast == pytest.approx(EXPERT_TEXT_INDEL)


def test_make_step_reward_func_passes_autojunk_on():
    """Kills: the bound function dropping ``autojunk=autojunk``. On actions over 200 characters the
    stdlib's autojunk heuristic lowers the ratio (trajectories/scoring.py's docstring)."""
    lines = [f"    value_{i} = compute(value_{i - 1}, {i})" for i in range(1, 30)]
    body = "\n".join(lines)
    expert = render_action(ToolCall(name="bash", arguments={"command": f"cat > f.py <<'EOF'\n{body}\nEOF"}))
    dedented = "\n".join(line.strip() for line in lines)
    pred = format_answer(
        "", ToolCall(name="bash", arguments={"command": f"cat > f.py <<'EOF'\n{dedented}\nEOF"})
    )
    plain = make_step_reward_func("difflib")([pred], expert_action=[expert])[0]
    junked = make_step_reward_func("difflib", autojunk=True)([pred], expert_action=[expert])[0]
    assert len(expert) > 200
    pred_action = render_action(parse_answer(pred)[1])
    assert plain == pytest.approx(difflib.SequenceMatcher(None, pred_action, expert, autojunk=False).ratio())
    assert junked == pytest.approx(difflib.SequenceMatcher(None, pred_action, expert, autojunk=True).ratio())
    assert junked < plain - 0.05


# ------------------------------------------------------------------- scoring: completion_text


def test_completion_text_takes_the_last_assistant_message():
    """Kills: `completion_text` iterating the chat forwards (the first assistant message wins)."""
    chat = [
        {"role": "assistant", "content": "first"},
        {"role": "user", "content": "observation"},
        {"role": "assistant", "content": "last"},
        {"role": "user", "content": "a trailing user turn"},
    ]
    assert completion_text(chat) == "last"


def test_completion_text_reward_follows_the_last_answer():
    """The same through the reward: a malformed first answer and a good last one score the last."""
    good = format_answer("t", ToolCall(name="bash", arguments={"command": "sed -n 1,40p setup.py"}))
    chat = [{"role": "assistant", "content": "no think block"}, {"role": "assistant", "content": good}]
    assert step_reward_func([chat], expert_action=[EXPERT]) == [1.0]
    assert step_reward_func([list(reversed(chat))], expert_action=[EXPERT]) == [FORMAT_ERROR_REWARD]


def test_completion_text_shapes():
    assert completion_text("plain") == "plain"
    assert completion_text({"role": "assistant", "content": "one"}) == "one"
    assert completion_text({"role": "assistant", "content": None}) == ""
    assert completion_text([{"content": "no role counts as assistant"}]) == "no role counts as assistant"
    assert completion_text([{"role": "user", "content": "u"}]) == ""
    assert completion_text([{"role": "assistant", "content": None}]) == ""
    with pytest.raises(TypeError, match="int"):
        completion_text(3)


# --------------------------------------------------------------------- actions: format_answer


def test_format_answer_strips_the_thought_literal():
    """Kills: `format_answer` writing ``thought`` instead of ``thought.strip()``."""
    call = ToolCall(name="bash", arguments={"command": "ls"})
    expected = (
        "<think>\nlook around\n</think>\n<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>"
    )
    assert format_answer("\n  look around \n\n", call) == expected
    assert format_answer("look around", call) == expected


# ------------------------------------------------------------------------ log_parsers: JUnit


def _suite(*cases: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
        + "".join(cases)
        + ("</testsuite></testsuites>")
    )


def test_junit_same_severity_duplicate_keeps_the_later_report():
    """Kills: ``>=`` -> ``>`` in `read_junit`'s duplicate rule. PASSED and XFAIL weigh the same; the
    later ``<testcase>`` of the same id is the one kept."""
    passed = '<testcase classname="t" name="test_x"/>'
    xfail = '<testcase classname="t" name="test_x"><skipped type="pytest.xfail" message="x"/></testcase>'
    assert read_junit(_suite(passed, xfail)) == {("t", "test_x"): XFAIL}
    assert read_junit(_suite(xfail, passed)) == {("t", "test_x"): PASSED}


def test_junit_worse_duplicate_wins_in_either_order():
    ok = '<testcase classname="t" name="test_y"/>'
    err = '<testcase classname="t" name="test_y"><error message="teardown"/></testcase>'
    skipped = '<testcase classname="t" name="test_y"><skipped message="s"/></testcase>'
    assert read_junit(_suite(ok, err)) == {("t", "test_y"): ERROR}
    assert read_junit(_suite(err, ok)) == {("t", "test_y"): ERROR}
    assert read_junit(_suite(skipped, ok)) == {("t", "test_y"): SKIPPED}
    assert read_junit(_suite(ok, skipped)) == {("t", "test_y"): SKIPPED}


@pytest.mark.parametrize(
    ("children", "status"),
    [
        ('<failure message="f"/><skipped message="s"/>', FAILED),
        ('<error message="e"/><skipped message="s"/>', ERROR),
        ('<failure message="f"/><skipped type="pytest.xfail" message="x"/>', FAILED),
        ('<skipped message="s"/><failure message="f"/>', FAILED),
        ('<skipped message="s"/><error message="e"/>', ERROR),
        ('<system-out>hi</system-out><skipped message="s"/>', SKIPPED),
        ("<system-out>hi</system-out>", PASSED),
    ],
)
def test_junit_failure_and_error_win_over_skipped(children, status):
    """Kills: dropping the ``break`` after a failure/error child (a later ``<skipped>`` would win)."""
    case = f'<testcase classname="t" name="test_z">{children}</testcase>'
    assert read_junit(_suite(case)) == {("t", "test_z"): status}


def test_junit_leading_text_is_stripped():
    """Kills: `parse_junit` passing the whole log to `read_junit` (the XML after a shell's output)."""
    xml = _suite('<testcase classname="tests.a" name="test_x"/>', '<testcase classname="" name="solo"/>')
    log = "+ python -m pytest --junitxml=/dev/stdout\ncollected 2 items\n" + xml
    assert parse_junit(log) == {"tests.a::test_x": PASSED, "solo": PASSED}
    assert parse_junit(xml) == {"tests.a::test_x": PASSED, "solo": PASSED}
    assert parse_junit("no xml here") == {}


# ---------------------------------------------------- survivors of `make mutation` that mattered
# (the rest are listed in docs/development.md: equivalent mutants and message texts nobody reads)


def test_similarity_default_is_without_autojunk():
    """`similarity`'s default must stay ``autojunk=False`` (the reward's definition, see its module)."""
    lines = [f"    value_{i} = compute(value_{i - 1}, {i})" for i in range(1, 30)]
    a, b = "\n".join(line.strip() for line in lines), "\n".join(lines)
    assert similarity(a, b, mode="difflib") == difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    assert similarity(a, b) == pytest.approx(difflib.SequenceMatcher(None, a, b, autojunk=False).ratio())
    with pytest.raises(ValueError, match="unknown mode 'slow'; expected 'difflib', 'exact' or 'fast'"):
        similarity(a, b, mode="slow")  # type: ignore[arg-type]


def test_reward_function_defaults_and_length_errors():
    func = make_step_reward_func()
    assert func.__name__ == "step_reward_exact"
    assert func([SWAPPED], expert_action=[EXPERT]) == [pytest.approx(EXPERT_TEXT_DIFFLIB)]
    with pytest.raises(ValueError, match="2 completions but 1 expert actions"):
        func([SWAPPED, SWAPPED], expert_action=[EXPERT])
    with pytest.raises(ValueError, match="1 completions but 2 expert actions"):
        step_reward_func([SWAPPED], expert_action=[EXPERT, EXPERT])


def test_outcome_reward_defaults():
    assert outcome_reward(True) == 1.0
    assert outcome_reward(False) == 0.0 and outcome_reward(None) == 0.0
    assert outcome_reward(True, format_error=True) == -1.0 and outcome_reward(True, tamper=True) == -1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ls", r"^no <function=NAME>\.\.\.</function> block found$"),
        (
            "<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>\n<function=submit>\n</function>",
            r"^expected exactly one action, found 2$",
        ),
        ("run: <function=submit>\n</function>", r"^text outside the <function=\.\.\.> block$"),
        ("<function=bash>\n<parameter=command>\nls\n</function>", r"^<parameter=command> is not closed"),
        (
            "<function=bash>\n<parameter=a>\n1\n</parameter>\n<parameter=a>\n2\n</parameter>\n</function>",
            r"^parameter 'a' given twice in <function=bash>$",
        ),
        (
            "<function=bash>\nstray\n<parameter=a>\n1\n</parameter>\n</function>",
            r"^unexpected text in <function=bash>: 'stray'$",
        ),
        (
            "<function=bash>\n<parameter=a>\n1\n</parameter>\ntail</function>",
            r"^unexpected text in <function=bash>: 'tail'$",
        ),
    ],
)
def test_parse_action_errors_say_what_is_wrong(text, message):
    """The message is what a policy reads back after a format error: each case names its own fault."""
    with pytest.raises(ActionParseError, match=message):
        parse_action(text)


def test_parse_errors_quote_at_most_60_characters_of_stray_text():
    stray = "y" * 100
    for text in (
        f"<function=bash>\n{stray}\n<parameter=a>\n1\n</parameter>\n</function>",
        f"<function=bash>\n<parameter=a>\n1\n</parameter>\n{stray}</function>",
    ):
        with pytest.raises(ActionParseError) as err:
            parse_action(text)
        assert str(err.value) == f"unexpected text in <function=bash>: {'y' * 60!r}"


def test_parse_answer_without_think_block_says_so():
    with pytest.raises(
        ActionParseError, match=r"^the answer does not start with a closed <think>\.\.\.</think> block$"
    ):
        parse_answer("<function=submit>\n</function>")


def test_pytest_parser_same_severity_duplicate_keeps_the_later_line():
    """Kills ``>=`` -> ``>`` in `_record` (the pytest/unittest parsers' duplicate rule, as in JUnit)."""
    log = "PASSED t.py::test_x\nXFAIL t.py::test_x - reason\n"
    assert parse_pytest(log) == {"t.py::test_x": XFAIL}
    assert parse_pytest("XFAIL t.py::test_x - reason\nPASSED t.py::test_x\n") == {"t.py::test_x": PASSED}
    assert parse_pytest("FAILED t.py::test_x - boom\nPASSED t.py::test_x\n") == {"t.py::test_x": FAILED}


def test_split_summary_rest_edges():
    assert split_summary_rest("t.py::test_x[a b]  ") == "t.py::test_x[a b]"
    assert split_summary_rest("t.py::test_x[p] - AssertionError: [1] - [2]") == "t.py::test_x[p]"
    assert split_summary_rest("t.py::test_y - msg - more") == "t.py::test_y"


def test_pytest_options_shortens_only_plain_absolute_paths():
    log = "\n".join(
        [
            "PASSED t.py::test_a[/abs/path/to/f.txt]",
            "PASSED t.py::test_b[//server/share/f.txt]",
            "PASSED t.py::test_c[/abs/*/f.txt]",
            "PASSED t.py::test_d[rel/path.txt]",
        ]
    )
    assert parse_pytest_options(log) == {
        "t.py::test_a[/f.txt]": PASSED,
        "t.py::test_b[//server/share/f.txt]": PASSED,
        "t.py::test_c[/abs/*/f.txt]": PASSED,
        "t.py::test_d[rel/path.txt]": PASSED,
    }


def test_junit_testcase_without_a_name():
    assert read_junit(_suite('<testcase classname="c"/>')) == {("c", ""): PASSED}


def test_register_parser_adds_a_new_name_and_refuses_a_second_function():
    def mine(log: str) -> dict[str, str]:
        return {"x": PASSED}

    name = "srl_swe_test_only_parser"
    try:
        assert register_parser(name)(mine) is mine
        assert get_parser(name) is mine and get_parser(f"parse_log_{name}") is mine
        assert register_parser(name)(mine) is mine  # the same function again is fine
        with pytest.raises(ValueError, match=f"log parser '{name}' is already registered"):
            register_parser(name)(lambda log: {})
    finally:
        log_parsers._PARSERS.pop(name, None)
    with pytest.raises(KeyError, match=r"unknown log parser 'nope'; expected one of: .*junit, .*pytest, "):
        get_parser("nope")
