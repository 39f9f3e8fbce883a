"""Tool definitions as data: what each tool is called, what it takes, and which tools go together.

`TOOL_SPECS` is the one list of the tools srl-swe knows. Everything else derives from it: the
toolsets below, `harness.tools.SUPPORTED_TOOLS` / `SCRIPT_TOOLS` (every tool but ``bash`` runs in the
in-sandbox script), and the script `harness/tools/sandbox_tools.py` implements each of them as a
function ``tool_<name>`` (it cannot import this module: it runs inside the sandbox with the standard
library only; `tests/test_tools.py` checks that its functions and this list agree). The policy's system
prompt is rendered from the specs (`trajectories.prompting`). A trajectory records the toolset it was
recorded with in ``metadata["toolset"]``.

Toolsets:

- ``bash_only``: mini-swe-agent's interface, ``bash`` + ``submit``.
- ``editor``: ``bash``, the ``str_replace_editor`` file editor, ``submit`` (OpenHands / SWE-agent 1.x).
- ``swe_agent``: SWE-agent's windowed file viewer and editor (``open``, ``goto``, ``scroll_up``,
  ``scroll_down``, ``create``, ``edit``, ``find_file``, ``search_dir``, ``search_file``) + ``bash`` +
  ``submit``, with typed parameters as published in the function-calling trajectory's
  ``replay_config.agent.tools.command_docs``.
- ``swe_agent_legacy``: the same commands as the old SWE-agent ``.traj`` layout records them, raw
  command lines: every tool takes one string parameter ``args`` holding everything after the command
  name (``edit`` -> ``"1:1\\nnew text\\nend_of_edit"``); any other command line is ``bash``.
"""

from __future__ import annotations

import json

from trajectories.schema import ParamSpec, ParamType, ToolCall, ToolSpec


def _p(
    name: str, description: str, type: ParamType = "string", required: bool = True, enum=None
) -> ParamSpec:
    return ParamSpec(name=name, type=type, description=description, required=required, enum=enum)


BASH = ToolSpec(
    name="bash",
    description="Run a command in a bash shell in the repository's working directory and return its output.",
    params=(_p("command", "The bash command to run."),),
)

SUBMIT = ToolSpec(name="submit", description="Submit the current changes to the repository and end the task.")

STR_REPLACE_EDITOR = ToolSpec(
    name="str_replace_editor",
    description=(
        "View, create and edit files. `view` shows a file with line numbers (or lists a directory); "
        "`create` writes `file_text` to a new file; `str_replace` replaces `old_str`, which must occur "
        "exactly once, with `new_str`; `insert` inserts `new_str` after line `insert_line`; "
        "`undo_edit` reverts the last edit of `path`."
    ),
    params=(
        _p("command", "The command to run.", enum=("view", "create", "str_replace", "insert", "undo_edit")),
        _p("path", "Absolute path of the file or directory."),
        _p("file_text", "Content of the file to create (`create`).", required=False),
        _p("old_str", "The exact text to replace (`str_replace`).", required=False),
        _p("new_str", "The new text (`str_replace`, `insert`).", required=False),
        _p("insert_line", "Insert `new_str` after this line (`insert`).", "integer", required=False),
        _p(
            "view_range",
            "Lines to show, e.g. [11, 20]; [11, -1] to the end (`view`).",
            "array",
            required=False,
        ),
    ),
)

# SWE-agent's windowed tools, names and parameters as in the function-calling trajectory's
# replay_config.agent.tools.command_docs (SWE-agent 1.x, bundles tools/defaults, search, edit_linting).
OPEN = ToolSpec(
    name="open",
    description="Open the file at the given path in the editor; with line_number, move the window to include that line.",
    params=(
        _p("path", "The path to the file to open."),
        _p(
            "line_number",
            "The line number to move the window to (default: the top of the file).",
            "integer",
            False,
        ),
    ),
    signature='open "<path>" [<line_number>]',
)
GOTO = ToolSpec(
    name="goto",
    description="Move the window to show line_number.",
    params=(_p("line_number", "The line number to move the window to.", "integer"),),
    signature="goto <line_number>",
)
SCROLL_UP = ToolSpec(name="scroll_up", description="Move the window up 100 lines.", signature="scroll_up")
SCROLL_DOWN = ToolSpec(
    name="scroll_down", description="Move the window down 100 lines.", signature="scroll_down"
)
CREATE = ToolSpec(
    name="create",
    description="Create and open a new file with the given name.",
    params=(_p("filename", "The name of the file to create."),),
    signature="create <filename>",
)
EDIT = ToolSpec(
    name="edit",
    description=(
        "Replace lines start_line through end_line (inclusive) of the open file with replacement_text. "
        "Indentation matters. Python files are checked after the edit (syntax errors, undefined names, "
        "indentation that is not a multiple of four); an edit that introduces such an error is not applied."
    ),
    params=(
        _p("start_line", "The line number to start the edit at.", "integer"),
        _p("end_line", "The line number to end the edit at (inclusive).", "integer"),
        _p("replacement_text", "The text to replace the current selection with."),
    ),
    signature="edit <start_line>:<end_line>\n<replacement_text>\nend_of_edit",
)
FIND_FILE = ToolSpec(
    name="find_file",
    description="Find all files with the given name or shell-style pattern (e.g. *.py) in dir (default: the current directory).",
    params=(
        _p("file_name", "The name of the file or pattern to search for."),
        _p("dir", "The directory to search in (default: the current directory).", required=False),
    ),
    signature="find_file <file_name> [<dir>]",
)
SEARCH_DIR = ToolSpec(
    name="search_dir",
    description="Search for search_term in all files in dir (default: the current directory).",
    params=(
        _p("search_term", "The term to search for."),
        _p("dir", "The directory to search in (default: the current directory).", required=False),
    ),
    signature="search_dir <search_term> [<dir>]",
)
SEARCH_FILE = ToolSpec(
    name="search_file",
    description="Search for search_term in file (default: the currently open file).",
    params=(
        _p("search_term", "The term to search for."),
        _p("file", "The file to search in (default: the currently open file).", required=False),
    ),
    signature="search_file <search_term> [<file>]",
)

WINDOWED_TOOLS: tuple[ToolSpec, ...] = (
    OPEN,
    GOTO,
    SCROLL_UP,
    SCROLL_DOWN,
    CREATE,
    EDIT,
    FIND_FILE,
    SEARCH_DIR,
    SEARCH_FILE,
)
LEGACY_COMMANDS: frozenset[str] = frozenset(t.name for t in WINDOWED_TOOLS) | {"submit"}

# The one list of known tools, by name (the toolsets, the runtime's tool sets and the in-sandbox script
# follow it).
TOOL_SPECS: dict[str, ToolSpec] = {t.name: t for t in (BASH, STR_REPLACE_EDITOR, *WINDOWED_TOOLS, SUBMIT)}


def _legacy(spec: ToolSpec) -> ToolSpec:
    if not spec.params:
        return spec
    return ToolSpec(
        name=spec.name,
        description=f"{spec.description} Usage: {spec.signature}",
        params=(_p("args", f"Everything after the command name, as on the command line: {spec.signature}"),),
        signature=spec.signature,
    )


TOOLSETS: dict[str, tuple[ToolSpec, ...]] = {
    "bash_only": (BASH, SUBMIT),
    "editor": (BASH, STR_REPLACE_EDITOR, SUBMIT),
    "swe_agent": (BASH, *WINDOWED_TOOLS, SUBMIT),
    "swe_agent_legacy": (BASH, *(_legacy(t) for t in WINDOWED_TOOLS), SUBMIT),
}


def get_toolset(name: str) -> tuple[ToolSpec, ...]:
    try:
        return TOOLSETS[name]
    except KeyError:
        raise KeyError(f"unknown toolset {name!r}; known: {', '.join(sorted(TOOLSETS))}") from None


def infer_toolset(tool_names: set[str]) -> str:
    """The smallest named toolset that holds every tool in `tool_names` ("custom" when none does)."""
    for name in ("bash_only", "editor", "swe_agent"):
        if tool_names <= {t.name for t in TOOLSETS[name]}:
            return name
    return "custom"


def argument_text(value: object) -> str:
    """A JSON argument value as canonical text: strings as is, anything else as its JSON text."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def canonical_call(name: str, arguments: dict[str, object]) -> ToolCall:
    """A ToolCall with arguments as text, in the tool's declared parameter order.

    Known tools list their parameters in spec order (unknown parameters follow in their given order)
    and drop JSON ``null`` values, so the same call always renders to the same canonical text no
    matter how the recording ordered its JSON keys.
    """
    spec = TOOL_SPECS.get(name)
    order = [p.name for p in spec.params] if spec else []
    keys = [k for k in order if k in arguments] + [k for k in arguments if k not in order]
    return ToolCall(
        name=name, arguments={k: argument_text(arguments[k]) for k in keys if arguments[k] is not None}
    )


def specs_for_calls(calls: list[ToolCall]) -> tuple[ToolSpec, ...]:
    """Specs for the tools a set of calls uses: the known spec by name, else one built from the calls."""
    params: dict[str, dict[str, None]] = {}
    for call in calls:
        params.setdefault(call.name, {}).update(dict.fromkeys(call.arguments))
    out = []
    for name, keys in params.items():
        if name in TOOL_SPECS:
            out.append(TOOL_SPECS[name])
        else:
            ps = tuple(_p(k, "(no description recorded)", required=False) for k in keys)
            out.append(ToolSpec(name=name, description="(no description recorded)", params=ps))
    return tuple(out)


def toolset_of(toolset: str | None, calls: list[ToolCall]) -> tuple[ToolSpec, ...]:
    """The tools a trajectory was recorded with: its named toolset, else specs built from its calls."""
    if toolset in TOOLSETS:
        return TOOLSETS[toolset]
    return specs_for_calls(calls)
