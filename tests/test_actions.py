"""Canonical action text: render/parse are exact inverses; malformed answers are rejected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trajectories.actions import ActionParseError, format_answer, parse_action, parse_answer, render_action
from trajectories.schema import ToolCall

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True)
TRICKY = st.sampled_from(
    [
        "</parameter>",
        "</function>",
        "&lt;/parameter>",
        "&amp;lt;/function>",
        "<parameter=x>",
        "<function=bash>",
        "<think>",
        "</think>",
        "\n",
        "\r\n",
        "&",
        "<",
        "é∑😀",
        " ",
    ]
)
VALUES = st.lists(st.one_of(st.text(), TRICKY), max_size=8).map("".join)


@settings(max_examples=400, deadline=None)
@given(name=NAMES, args=st.dictionaries(NAMES, VALUES, max_size=4))
def test_render_parse_round_trip(name: str, args: dict[str, str]) -> None:
    call = ToolCall(name=name, arguments=args)
    text = render_action(call)
    parsed = parse_action(text)
    assert parsed == call
    assert list(parsed.arguments) == list(args)  # order is part of the canonical text
    assert render_action(parsed) == text


@settings(max_examples=200, deadline=None)
@given(
    thought=VALUES.filter(lambda t: "</think>" not in t),
    name=NAMES,
    args=st.dictionaries(NAMES, VALUES, max_size=3),
)
def test_answer_round_trip(thought: str, name: str, args: dict[str, str]) -> None:
    call = ToolCall(name=name, arguments=args)
    got_thought, got_call = parse_answer(format_answer(thought, call))
    assert got_call == call
    assert got_thought == thought.strip()


def test_canonical_form_literal() -> None:
    call = ToolCall(name="bash", arguments={"command": "grep -n '</parameter>' a && echo <x>"})
    assert render_action(call) == (
        "<function=bash>\n<parameter=command>\ngrep -n '&lt;/parameter>' a && echo <x>\n</parameter>\n</function>"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ls -la",
        "<think>x</think>",  # no action
        "<think>x</think>\n<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>\n"
        "<function=bash>\n<parameter=command>\npwd\n</parameter>\n</function>",  # two actions
        "<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>",  # no think block
        "<think>x</think>\n<function=bash>\n<parameter=command>\nls\n</function>",  # unclosed parameter
        "<think>x</think>\n<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>\ntrailing",
        "<think>x</think>\nnote\n<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>",
        "<think>x</think>\n<function=bash>\n<parameter=a>\n1\n</parameter>\n<parameter=a>\n2\n</parameter>\n</function>",
    ],
)
def test_malformed_answers_are_rejected(text: str) -> None:
    with pytest.raises(ActionParseError):
        parse_answer(text)
