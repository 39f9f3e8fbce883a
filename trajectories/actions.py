"""Canonical text form of an action: the XML function-call format the policy writes.

    <function=bash>
    <parameter=command>
    ls -la
    </parameter>
    </function>

`render_action` and `parse_action` are exact inverses for any argument values (property-tested).
Values are written raw, so code with ``<`` or ``&`` reads naturally; the only sequences that need
escaping inside a value are the closing tags ``</parameter>`` and ``</function>``, written
``&lt;/parameter>`` / ``&lt;/function>`` (and a literal ``&lt;/parameter>`` gains one ``amp;`` per
level, so the mapping stays a bijection).
"""

from __future__ import annotations

import re

from trajectories.errors import SrlSweError
from trajectories.schema import ToolCall

_NAME = r"[A-Za-z_][A-Za-z0-9_.\-]*"
_FUNCTION_RE = re.compile(rf"<function=({_NAME})>(.*?)</function>", re.DOTALL)
_PARAM_OPEN_RE = re.compile(rf"<parameter=({_NAME})>")
_PARAM_CLOSE = "</parameter>"
_ESCAPE_RE = re.compile(r"</(parameter|function)>|&((?:amp;)*)lt;/(parameter|function)>")
_UNESCAPE_RE = re.compile(r"&((?:amp;)*)lt;/(parameter|function)>")


class ActionParseError(SrlSweError, ValueError):
    """The text does not hold exactly one well-formed function call."""


def _escape(value: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return f"&lt;/{m.group(1)}>"
        return f"&amp;{m.group(2)}lt;/{m.group(3)}>"

    return _ESCAPE_RE.sub(sub, value)


def _unescape(value: str) -> str:
    def sub(m: re.Match[str]) -> str:
        amps, tag = m.group(1), m.group(2)
        if not amps:
            return f"</{tag}>"
        return f"&{amps[len('amp;') :]}lt;/{tag}>"

    return _UNESCAPE_RE.sub(sub, value)


def render_action(call: ToolCall) -> str:
    """The canonical text of one tool call."""
    parts = [f"<function={call.name}>\n"]
    for key, value in call.arguments.items():
        parts.append(f"<parameter={key}>\n{_escape(value)}\n</parameter>\n")
    parts.append("</function>")
    return "".join(parts)


def _parse_body(name: str, body: str) -> ToolCall:
    args: dict[str, str] = {}
    pos = 0
    while True:
        m = _PARAM_OPEN_RE.search(body, pos)
        if m is None:
            rest = body[pos:]
            if rest.strip():
                raise ActionParseError(f"unexpected text in <function={name}>: {rest.strip()[:60]!r}")
            break
        between = body[pos : m.start()]
        if between.strip():
            raise ActionParseError(f"unexpected text in <function={name}>: {between.strip()[:60]!r}")
        end = body.find(_PARAM_CLOSE, m.end())
        if end < 0:
            raise ActionParseError(f"<parameter={m.group(1)}> is not closed with </parameter>")
        raw = body[m.end() : end]
        if raw.startswith("\n"):
            raw = raw[1:]
        if raw.endswith("\n"):
            raw = raw[:-1]
        key = m.group(1)
        if key in args:
            raise ActionParseError(f"parameter {key!r} given twice in <function={name}>")
        args[key] = _unescape(raw)
        pos = end + len(_PARAM_CLOSE)
    return ToolCall(name=name, arguments=args)


def find_actions(text: str) -> list[re.Match[str]]:
    """Every complete ``<function=...>...</function>`` block in `text`, in order."""
    return list(_FUNCTION_RE.finditer(text))


def parse_action(text: str) -> ToolCall:
    """Parse text that holds exactly one function call (surrounding whitespace allowed)."""
    stripped = text.strip()
    matches = find_actions(stripped)
    if not matches:
        raise ActionParseError("no <function=NAME>...</function> block found")
    if len(matches) > 1:
        raise ActionParseError(f"expected exactly one action, found {len(matches)}")
    m = matches[0]
    if stripped[: m.start()].strip() or stripped[m.end() :].strip():
        raise ActionParseError("text outside the <function=...> block")
    return _parse_body(m.group(1), m.group(2))


_THINK_RE = re.compile(r"\A\s*<think>(.*?)</think>\s*(.*)\Z", re.DOTALL)


def format_answer(thought: str, call: ToolCall) -> str:
    """What the policy is trained to write at one step: a private thought, then one action."""
    return f"<think>\n{thought.strip()}\n</think>\n{render_action(call)}"


def parse_answer(text: str) -> tuple[str, ToolCall]:
    """Split a policy answer into (thought, action); raise ActionParseError when it is malformed.

    Well-formed means: a ``<think>...</think>`` block first, then exactly one function call, and
    nothing else but white space.
    """
    m = _THINK_RE.match(text)
    if m is None:
        raise ActionParseError("the answer does not start with a closed <think>...</think> block")
    return m.group(1).strip(), parse_action(m.group(2))
