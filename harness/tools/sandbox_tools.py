#!/usr/bin/env python3
"""srl-swe tools that run inside the sandbox: one self-contained script, standard library only.

Copied into the container once and run per call, from the agent's persistent shell (so relative paths
and the working directory are the agent's own)::

    python3 -I -S /opt/srl-tools/tools.py <tool> [<name> <value>]...   # what the runtime sends
    python3 -I -S /opt/srl-tools/tools.py <tool> '<json object of arguments>'
    python3 -I -S /opt/srl-tools/tools.py <tool> @/tmp/args.json      # large arguments, file removed

Arguments as name/value pairs need no parsing (``json`` alone costs ~9 ms of start-up through ``re``),
so the common calls start in about the time of a bare interpreter.

The observation is printed on stdout; the exit status is 0 on success and 1 when the tool reports an
error. Tools:

- ``str_replace_editor`` (command = view | create | str_replace | insert | undo_edit), the file editor of
  Anthropic's computer-use demo as SWE-agent publishes it (messages and ``cat -n`` layout as it prints).
- SWE-agent's windowed file viewer and editor: ``open``, ``goto``, ``scroll_up``, ``scroll_down``,
  ``create``, ``edit``, ``find_file``, ``search_dir``, ``search_file``; and ``submit`` (the repository
  diff against the base commit). Output formats follow SWE-agent 1.x (WINDOW / OVERLAP from the state
  file or the environment). Every one of them also takes the legacy raw form ``{"args": "<everything
  after the command name>"}`` that old SWE-agent trajectories record (``edit 1:2\\n...\\nend_of_edit``).

State (open file, window position, settings) lives in a small file outside the repository
(``$SRL_TOOLS_STATE``, default ``/tmp/.srl_tools_state``, `marshal` format: no import cost); the
editor's undo history lives next to it, one file per edited path, so ordinary calls never load it.

The lint run after ``edit`` (Python files only; an edit that introduces an error is not applied, as in
SWE-agent's ``edit_linting`` bundle) checks what the standard library can, in flake8's message form:
syntax errors (E999), undefined names (F821: a conservative pyflakes rule built on `symtable`; names
used at module level before their binding, names in string annotations and modules with a star import
are not reported) and indentation that is not a multiple of four (E111). SWE-agent's flake8 run also
selects F822 / F831 (undefined name in ``__all__``, duplicate argument) and E112 / E113 / E902; those are
not checked here. ``# noqa`` comments are honoured as flake8 does.

Why one long file: it is copied into the container as a single script and run with ``-I -S`` by
whatever Python the image has (>= 3.9), so it can import nothing of srl-swe and no third-party package;
the tools reproduce SWE-agent's exact observation texts, which is most of its length. The tools it offers
are its ``tool_<name>`` functions; the host's list of tools is `trajectories.tools.TOOL_SPECS`.

Python >= 3.9; keep imports lazy where they cost start-up time.
"""

from __future__ import annotations

import marshal
import os
import sys

STATE_PATH = os.environ.get("SRL_TOOLS_STATE", "/tmp/.srl_tools_state")
DEFAULT_WINDOW = 100
DEFAULT_OVERLAP = 2
MAX_RESPONSE_LEN = 16000
SNIPPET_LINES = 4
TRUNCATED_MESSAGE = (
    "<response clipped><NOTE>To save on context only part of this file has been shown to you. You should "
    "retry this tool after you have searched inside the file with `grep -n` in order to find the line "
    "numbers of what you are looking for.</NOTE>"
)
EDIT_SUCCESS = (
    "File updated. Please review the changes and make sure they are correct\n"
    "(correct indentation, no duplicate lines, etc). Edit the file again if necessary."
)
EDIT_SUCCESS_V0 = (
    "File updated. Please review the changes and make sure they are correct (correct indentation, no "
    "duplicate lines, etc). Edit the file again if necessary."
)
EDIT_USAGE = "Usage: edit <start_line>:<end_line>\n<replacement_text>\nend_of_edit"
LINT_ERROR_TEMPLATE = """Your proposed edit has introduced new syntax error(s). Please read this error message carefully and then retry editing the file.

ERRORS:
{errors}

This is how your edit would have looked if applied
------------------------------------------------
{window_applied}
------------------------------------------------

This is the original code before your edit
------------------------------------------------
{window_original}
------------------------------------------------

Your changes have NOT been applied. Please fix your edit command and try again.
DO NOT re-run the same failed edit command. Running it again will lead to the same error."""

LINT_ERROR_TEMPLATE_V0 = """Your proposed edit has introduced new syntax error(s). Please understand the fixes and retry your edit commmand.

ERRORS:
{errors}

This is how your edit would have looked if applied
-------------------------------------------------
{window_applied}
-------------------------------------------------

This is the original code before your edit
-------------------------------------------------
{window_original}
-------------------------------------------------
Your changes have NOT been applied. Please fix your edit command and try again.
You either need to 1) Specify the correct start/end line arguments or 2) Correct your edit code.
DO NOT re-run the same failed edit command. Running it again will lead to the same error."""


class ToolError(Exception):
    """The tool's answer is an error message (printed as the observation, exit status 1)."""


# ----------------------------------------------------------------------------------------------------
# state and file helpers


class State:
    """The small JSON state shared by all calls: open file, window position, settings."""

    def __init__(self, path: str = STATE_PATH) -> None:
        self.path = path
        try:
            with open(path, "rb") as fh:
                self.data = marshal.load(fh)
        except (OSError, ValueError, EOFError, TypeError):
            self.data = {}
        if not isinstance(self.data, dict):
            self.data = {}
        self.dirty = False

    def get(self, key: str, default=None):
        return self.data.get(key, default)

    def set(self, key: str, value) -> None:
        if self.data.get(key) != value:
            self.data[key] = value
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as fh:
            marshal.dump(self.data, fh)
        os.replace(tmp, self.path)
        self.dirty = False

    @property
    def window(self) -> int:
        return int(self.data.get("window") or os.environ.get("WINDOW") or DEFAULT_WINDOW)

    @property
    def overlap(self) -> int:
        value = self.data.get("overlap")
        if value is None:
            value = os.environ.get("OVERLAP", DEFAULT_OVERLAP)
        return int(value)

    def history_path(self, file_path: str) -> str:
        import hashlib

        digest = hashlib.sha1(file_path.encode("utf-8", "surrogateescape")).hexdigest()[:20]
        return os.path.join(os.path.dirname(self.path) or ".", ".srl_tools_history", digest + ".history")

    def push_history(self, file_path: str, content: str | None) -> None:
        hp = self.history_path(file_path)
        entries = self._load_history(hp)
        entries.append(content)
        os.makedirs(os.path.dirname(hp), exist_ok=True)
        with open(hp, "wb") as fh:
            marshal.dump(entries, fh)

    def pop_history(self, file_path: str) -> tuple[bool, str | None]:
        hp = self.history_path(file_path)
        entries = self._load_history(hp)
        if not entries:
            return False, None
        content = entries.pop()
        with open(hp, "wb") as fh:
            marshal.dump(entries, fh)
        return True, content

    @staticmethod
    def _load_history(hp: str) -> list:
        try:
            with open(hp, "rb") as fh:
                entries = marshal.load(fh)
        except (OSError, ValueError, EOFError, TypeError):
            return []
        return entries if isinstance(entries, list) else []


def read_text(path: str) -> str:
    """File text with universal newlines (as SWE-agent reads it); undecodable bytes survive a write."""
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        return fh.read()


def write_text(path: str, text: str, like: str | None = None) -> None:
    """Write `text`; when the file used CRLF line endings throughout, keep them."""
    newline = "\n"
    if like is not None and os.path.exists(like):
        with open(like, "rb") as fh:
            raw = fh.read()
        if raw.count(b"\r\n") and raw.count(b"\r\n") == raw.count(b"\n"):
            newline = "\r\n"
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline=newline) as fh:
        fh.write(text)


def as_int(value, name: str) -> int:
    if isinstance(value, bool):
        raise ToolError(f"Error: `{name}` must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ToolError(f"Error: `{name}` must be an integer, got {value!r}") from None


def shell_split(text: str) -> list[str]:
    import shlex

    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


# ----------------------------------------------------------------------------------------------------
# SWE-agent's windowed file


class Window:
    """A file shown `window` lines at a time; line numbers are 0-based inside, 1-based on screen.

    Two models, by the state's ``style``: ``v1`` (SWE-agent 1.x, default) keeps the window's first line;
    ``v0`` (SWE-agent 0.x, the old ``.traj`` layout) keeps the window's centre line ``current_line``
    (1-based) and prints the way its shell functions did (``head -n C+W/2 | tail -n W``).
    """

    def __init__(self, state: State, path: str | None = None, *, shown_as: str | None = None) -> None:
        self.state = state
        if path is None:
            path = state.get("open_file")
            if not path:
                raise ToolError("No file open. Use the open command first.")
        if os.path.isdir(path):
            raise ToolError(
                f"Error: {path} is a directory. You can only open files. Use cd or ls to navigate directories."
            )
        if not os.path.exists(path):
            raise ToolError(f"Error: File {path} not found")
        self.abspath = os.path.realpath(path)
        # SWE-agent prints the path as the agent gave it when opening, and the resolved path otherwise
        self.shown = shown_as if shown_as is not None else os.path.normpath(path)
        self.text = read_text(self.abspath)
        self.window = state.window
        self.overlap = state.overlap
        if state.get("open_file") != self.abspath:
            state.set("open_file", self.abspath)
        self.legacy = state.get("style") == "v0"
        if self.legacy:
            self.shown = self.abspath
        self._first = 0
        self.first_line = int(state.get("first_line", 0) or 0)
        self.current_line = float(state.get("current_line", 0) or 0)

    @property
    def n_lines(self) -> int:
        return len(self.text.splitlines())

    @property
    def first_line(self) -> int:
        return self._first

    @first_line.setter
    def first_line(self, value: float) -> None:
        self._first = max(0, min(int(value), self.n_lines - self.window))
        self.state.set("first_line", self._first)

    def goto(self, line: int) -> None:
        """Put 0-based `line` a sixth of a window below the top (SWE-agent's "top" mode)."""
        self.first_line = line - self.window / 6

    def scroll(self, n: int) -> None:
        if n > 0:
            self.first_line = self.first_line + n - self.overlap
        elif n < 0:
            self.first_line = self.first_line + n + self.overlap

    # -- both models ------------------------------------------------------------------------
    def goto_line(self, line: int) -> None:
        """Show 1-based `line` (a sixth of a window below the top)."""
        if self.legacy:
            self.current_line = max(float(int(line + self.window / 2 - self.window // 6)), 1.0)
            self.constrain()
        else:
            self.goto(line - 1)

    def top(self) -> None:
        if self.legacy:
            self.current_line = self.window / 2
            self.constrain()
        else:
            self.first_line = 0

    def scroll_by(self, direction: int) -> None:
        if self.legacy:
            self.current_line += direction * (self.window - self.overlap)
            self.constrain()
        else:
            self.scroll(direction * self.window)

    def after_edit(self, start0: int) -> None:
        if self.legacy:
            self.current_line = float(start0)
            self.constrain()
        else:
            self.goto(start0)

    # -- v0 (centre line) ------------------------------------------------------------------
    def constrain(self, window: int | None = None) -> None:
        half = (window or self.window) // 2
        self.current_line = max(min(self.current_line, self.n_lines - half), half)
        self.state.set("current_line", self.current_line)

    def render_v0(self, current: float | None = None, window: int | None = None) -> str:
        c = self.current_line if current is None else current
        w = window or self.window
        n = self.n_lines
        lines = self.text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        head = int(max(c + w / 2, w / 2) // 1)
        shown = list(enumerate(lines[:head], 1))[-w:] if w > 0 else []
        above = max(0, int((c - w / 2) // 1))
        below = max(0, int((n - c - w / 2 + 0.5) // 1))
        out = [f"[File: {self.abspath} ({n} lines total)]"]
        if above > 0:
            out.append(f"({above} more lines above)")
        out.extend(f"{i}:{line}" for i, line in shown)
        if below > 0:
            out.append(f"({below} more lines below)")
        return "\n".join(out)

    def render(self) -> str:
        if self.legacy:
            return self.render_v0()
        start = self.first_line
        n = self.n_lines
        end = min(start + self.window - 1, n - 1)
        lines = self.text.split("\n")[start : end + 1]
        out = [f"[File: {self.shown} ({n} lines total)]"]
        if start > 0:
            out.append(f"({start} more lines above)")
        out.extend(f"{i + start + 1}:{line}" for i, line in enumerate(lines))
        if end < n - 1:
            out.append(f"({n - end - 1} more lines below)")
        return "\n".join(out)

    def save(self, text: str) -> None:
        write_text(self.abspath, text, like=self.abspath)
        self.text = text


def tool_open(state: State, args: dict) -> str:
    if "args" in args:
        parts = shell_split(args["args"])
        args = {"path": parts[0] if parts else None, "line_number": parts[1] if len(parts) > 1 else None}
    path = args.get("path")
    if not path:
        if state.get("open_file"):
            return Window(state).render()
        raise ToolError('Usage: open "<file>"')
    wf = Window(state, path, shown_as=os.path.normpath(path))
    line_number = args.get("line_number")
    notes = []
    if line_number is not None and str(line_number).strip() != "":
        try:
            line = int(str(line_number).strip())
        except ValueError:
            raise ToolError(
                'Usage: open "<file>" [<line_number>]\nError: <line_number> must be a number'
            ) from None
        if line > wf.n_lines:
            notes.append(
                f"Warning: <line_number> ({line}) is greater than the number of lines in the file ({wf.n_lines})"
            )
            notes.append(f"Warning: Setting <line_number> to {wf.n_lines}")
            line = wf.n_lines
        elif line < 1:
            notes.append(f"Warning: <line_number> ({line}) is less than 1")
            notes.append("Warning: Setting <line_number> to 1")
            line = 1
        wf.goto_line(line)
    else:
        wf.top()
    return "\n".join([*notes, wf.render()])


def tool_goto(state: State, args: dict) -> str:
    if "args" in args:
        parts = shell_split(args["args"])
        args = {"line_number": parts[0] if parts else None}
    raw = args.get("line_number")
    if raw is None or str(raw).strip() == "":
        raise ToolError("Usage: goto <line_number>")
    try:
        line = int(str(raw).strip())
    except ValueError:
        raise ToolError("Usage: goto <line>\nError: <line> must be a number") from None
    wf = Window(state, shown_as=_open_abspath(state))
    if line > wf.n_lines:
        raise ToolError(f"Error: <line> must be less than or equal to {wf.n_lines}")
    wf.goto_line(line)
    return wf.render()


def _open_abspath(state: State) -> str:
    path = state.get("open_file")
    if not path:
        raise ToolError("No file open. Use the open command first.")
    return path


def _scroll(state: State, direction: int) -> str:
    wf = Window(state, shown_as=_open_abspath(state))
    wf.scroll_by(direction)
    return wf.render()


def tool_scroll_up(state: State, args: dict) -> str:
    return _scroll(state, -1)


def tool_scroll_down(state: State, args: dict) -> str:
    return _scroll(state, 1)


def tool_create(state: State, args: dict) -> str:
    if "args" in args:
        parts = shell_split(args["args"])
        args = {"filename": parts[0] if parts else None}
    path = args.get("filename") or args.get("path")
    if not path:
        raise ToolError("Usage: create <filename>")
    if os.path.exists(path):
        wf = Window(state, path, shown_as=os.path.normpath(path))
        raise ToolError(f"Error: File '{path}' already exists.\n{wf.render()}")
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    write_text(path, "\n")
    wf = Window(state, path, shown_as=os.path.normpath(path))
    wf.top()
    return wf.render()


def parse_legacy_edit(raw: str) -> tuple[str, str | None]:
    """``"N:M\\n<text>\\nend_of_edit"`` -> (``"N:M"``, text); text is None when the terminator is missing."""
    first, sep, rest = raw.lstrip(" ").partition("\n")
    line_range = first.strip()
    if not sep:
        return line_range, None
    lines = rest.split("\n")
    body: list[str] = []
    for line in lines:
        if line.rstrip() == "end_of_edit":
            return line_range, "\n".join(body)
        body.append(line)
    # no terminator: SWE-agent reads to end of input
    while body and body[-1] == "":
        body.pop()
    return line_range, "\n".join(body)


def tool_edit(state: State, args: dict) -> str:
    if "args" in args:
        line_range, text = parse_legacy_edit(args["args"])
        try:
            start_s, end_s = line_range.split(":")
            start, end = int(start_s), int(end_s)
        except ValueError:
            raise ToolError(EDIT_USAGE) from None
        if text is None:
            raise ToolError(EDIT_USAGE)
    else:
        if "start_line" not in args or "end_line" not in args or "replacement_text" not in args:
            raise ToolError(EDIT_USAGE)
        start = as_int(args["start_line"], "start_line")
        end = as_int(args["end_line"], "end_line")
        text = str(args["replacement_text"])
    if not state.get("open_file"):
        raise ToolError("No file opened. Use the `open` command first.")
    if start < 1 or end < start - 1:
        raise ToolError(f"Error: invalid line range {start}:{end}.\n{EDIT_USAGE}")
    wf = Window(state, shown_as=_open_abspath(state))
    start0, end0 = start - 1, end - 1
    old_text = wf.text
    lines = old_text.split("\n")
    lines[start0 : end0 + 1] = text.split("\n") if text else []
    new_text = "\n".join(lines)

    errors = ""
    if wf.abspath.endswith(".py"):
        # E111 needs a tokenizer pass over both versions: only when a new line could cause one
        e111 = any(_indent_width(line) % 4 for line in text.split("\n") if line.strip())
        before = lint_python(old_text, e111=e111, filename=wf.abspath)
        after = lint_python(new_text, e111=e111, filename=wf.abspath)
        errors = new_lint_errors(after, before, (start0 + 1, end0 + 1), len(text.splitlines()))
    if errors:
        if wf.legacy:  # windows around the edit: centre (n/2 + start), size n + 10
            n_new = len(text.split("\n")) if text else 0
            centre = float(n_new // 2 + start0)
            wf.text = new_text
            applied = wf.render_v0(_constrained(centre, n_new + 10, wf.n_lines), n_new + 10)
            wf.text = old_text
            centre, size = float((end - start0 + 1) // 2 + start0), end - start0 + 10
            original = wf.render_v0(_constrained(centre, size, wf.n_lines), size)
            template = LINT_ERROR_TEMPLATE_V0
        else:
            wf.text = new_text
            applied = wf.render()
            wf.text = old_text
            original = wf.render()
            template = LINT_ERROR_TEMPLATE
        raise ToolError(template.format(errors=errors, window_applied=applied, window_original=original))
    wf.save(new_text)
    wf.after_edit(start0)
    if wf.legacy:
        return wf.render() + "\n" + EDIT_SUCCESS_V0
    return EDIT_SUCCESS + "\n" + wf.render()


def _constrained(centre: float, window: int, n_lines: int) -> float:
    half = window // 2
    return max(min(centre, n_lines - half), half)


# ----------------------------------------------------------------------------------------------------
# lint (the part of SWE-agent's flake8 selection that the standard library can check)


def _indent_width(line: str) -> int:
    return len(line[: len(line) - len(line.lstrip())].expandtabs(8))


def lint_python(source: str, e111: bool = True, filename: str = "<edit>") -> list[tuple[int, int, str]]:
    """(line, column, problem) in flake8's form: syntax errors (E999), else undefined names (F821) and
    indentation that is not a multiple of four (E111), sorted by position."""
    try:
        compile(source, "<edit>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        if isinstance(exc, SyntaxError):
            row = exc.lineno or 1
            col = exc.offset or 1
            name = type(exc).__name__
            msg = exc.msg
        else:  # source with NUL bytes
            row, col, name, msg = 1, 1, "ValueError", str(exc)
        return [(row, col, f"E999 {name}: {msg}")]
    errors = _f821(source, filename)
    if e111:
        errors += _e111(source)
    return sorted(_without_noqa(errors, source))


def _without_noqa(errors: list[tuple[int, int, str]], source: str) -> list[tuple[int, int, str]]:
    """Drop errors on lines that flake8 would skip: ``# noqa`` or ``# noqa: <codes>`` naming the code."""
    if not errors or "noqa" not in source.lower():
        return errors
    import re

    rx = re.compile(r"#\s*noqa(?::[\s]?(?P<codes>[A-Z][0-9]+(?:[,\s]+[A-Z][0-9]+)*))?", re.IGNORECASE)
    lines = source.split("\n")
    kept = []
    for row, col, problem in errors:
        m = rx.search(lines[row - 1]) if 0 < row <= len(lines) else None
        if m is None:
            kept.append((row, col, problem))
        elif m.group("codes") and problem.split()[0].upper() not in re.split(
            r"[,\s]+", m.group("codes").upper()
        ):
            kept.append((row, col, problem))
    return kept


_SCOPE_NAMES = {"Lambda": "lambda", "GeneratorExp": "genexpr", "ListComp": "listcomp", "SetComp": "setcomp",
                "DictComp": "dictcomp"}  # fmt: skip


def _f821(source: str, filename: str) -> list[tuple[int, int, str]]:
    """pyflakes' "undefined name" for names that resolve to the module scope and are bound nowhere there.

    Conservative: a name used at module level before its binding, names inside string annotations and
    modules with a star import are not reported (pyflakes would report some of them).

    Longer than most functions here: most of it is the nested recursive `visit`, which walks the AST and
    the matching `symtable` scopes together and closes over the names bound at module level (`defined`)
    and the findings (`out`); split apart, those would have to be threaded through every call.
    """
    import ast
    import builtins
    import symtable

    try:
        tree = ast.parse(source, filename)
        top = symtable.symtable(source, filename, "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in ast.walk(tree)):
        return []
    defined = set(dir(builtins)) | {"__file__", "__builtins__", "__annotations__", "WindowsError"}
    if os.path.basename(filename) == "__init__.py":
        defined.add("__path__")
    tables = [top]
    while tables:
        table = tables.pop()
        tables.extend(table.get_children())
        for sym in table.get_symbols():
            if table is top and (sym.is_assigned() or sym.is_imported() or sym.is_namespace()):
                defined.add(sym.get_name())
            elif sym.is_declared_global() and (sym.is_assigned() or sym.is_imported()):
                defined.add(sym.get_name())
    out: list[tuple[int, int, str]] = []

    def children_of(table) -> dict:
        kids: dict = {}
        for child in table.get_children():
            kids.setdefault((child.get_name(), child.get_lineno()), []).append(child)
        return kids

    def child_table(kids: dict, node) -> object | None:
        name = getattr(node, "name", None) or _SCOPE_NAMES.get(type(node).__name__, "")
        found = kids.get((name, node.lineno))
        return found.pop(0) if found else None

    def visit(node, table, kids: dict, quiet: bool) -> None:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if not quiet and node.id not in defined:
                try:
                    sym = table.lookup(node.id)
                except KeyError:
                    return
                # not is_local(): symtable (3.11) takes any table named "top" for the module's
                if sym.is_global() and not (sym.is_local() or sym.is_assigned() or sym.is_imported()):
                    out.append((node.lineno, node.col_offset + 1, f"F821 undefined name '{node.id}'"))
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            outer = [*getattr(node, "decorator_list", [])]
            if isinstance(node, ast.ClassDef):
                outer += [*node.bases, *node.keywords]
                inner = node.body
            else:
                a = node.args
                outer += [*a.defaults, *(d for d in a.kw_defaults if d is not None)]
                for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                    if arg is not None and arg.annotation is not None:
                        outer.append(arg.annotation)
                if getattr(node, "returns", None) is not None:
                    outer.append(node.returns)
                inner = node.body if isinstance(node.body, list) else [node.body]
            for child in outer:
                visit(child, table, kids, quiet)
            sub = child_table(kids, node)
            if sub is None:
                return  # a scope we cannot place: report nothing inside rather than guess
            sub_kids = children_of(sub)
            for child in inner:
                visit(child, sub, sub_kids, quiet)
            return
        if isinstance(node, (ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp)):
            sub = child_table(kids, node)
            if sub is not None:  # not inlined (PEP 709 inlines list/set/dict comprehensions in 3.12)
                visit(node.generators[0].iter, table, kids, quiet)
                sub_kids = children_of(sub)
                for child in ast.iter_child_nodes(node):
                    if child is not node.generators[0]:
                        visit(child, sub, sub_kids, quiet)
                first = node.generators[0]
                for child in [first.target, *first.ifs]:
                    visit(child, sub, sub_kids, quiet)
                return
        if isinstance(node, ast.Try) and any(_catches_name_error(h.type) for h in node.handlers):
            for child in node.body:
                visit(child, table, kids, True)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, table, kids, quiet)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, table, kids, quiet)

    try:
        visit(tree, top, children_of(top), False)
    except RecursionError:
        return []
    return out


def _catches_name_error(expr) -> bool:
    import ast

    if isinstance(expr, ast.Name):
        return expr.id in ("NameError", "Exception", "BaseException")
    if isinstance(expr, ast.Tuple):
        return any(_catches_name_error(e) for e in expr.elts)
    return expr is None


def _e111(source: str) -> list[tuple[int, int, str]]:
    import io
    import tokenize

    out = []
    skip = {tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}
    at_logical_start = True
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.NEWLINE:
                at_logical_start = True
                continue
            if tok.type in skip or tok.type == tokenize.ENDMARKER:
                continue
            if at_logical_start:
                at_logical_start = False
                indent = _indent_width(tok.line)
                if indent % 4:
                    out.append((tok.start[0], indent + 1, "E111 indentation is not a multiple of 4"))
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def new_lint_errors(
    after: list[tuple[int, int, str]],
    before: list[tuple[int, int, str]],
    window: tuple[int, int],
    n_new_lines: int,
) -> str:
    """Errors of `after` that the edit introduced (SWE-agent's filter), one ``- problem`` line each."""
    shift = n_new_lines - (window[1] - window[0] + 1)
    previous = set()
    for row, col, problem in before:
        if row < window[0]:
            previous.add((row, col, problem))
        elif row > window[1]:
            previous.add((row + shift, col, problem))
    fresh = [e for e in after if e not in previous and e[0] >= window[0]]
    return "\n".join(f"- {problem}" for _row, _col, problem in fresh)


# ----------------------------------------------------------------------------------------------------
# search tools


def _find_order(root: str, skip_hidden: bool = False):
    """Entries under `root` in the order `find` prints them (depth first, directory order)."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        if skip_hidden and entry.name.startswith("."):
            continue
        yield entry
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            yield from _find_order(entry.path, skip_hidden)


def tool_find_file(state: State, args: dict) -> str:
    if "args" in args:
        parts = shell_split(args["args"])
        if len(parts) not in (1, 2):
            raise ToolError("Usage: find_file <file_name> [<dir>]")
        args = {"file_name": parts[0], "dir": parts[1] if len(parts) > 1 else None}
    import fnmatch

    name = args.get("file_name")
    if not name:
        raise ToolError("Usage: find_file <file_name> [<dir>]")
    directory = args.get("dir") or "./"
    if not os.path.isdir(directory):
        raise ToolError(f"Directory {directory} not found")
    directory = os.path.realpath(directory)
    matches = [
        e.path
        for e in _find_order(directory)
        if fnmatch.fnmatchcase(e.name, name) and e.is_file(follow_symlinks=False)
    ]
    if not matches:
        return f'No matches found for "{name}" in {directory}'
    return "\n".join([f'Found {len(matches)} matches for "{name}" in {directory}:', *matches])


def bre_to_python(pattern: str) -> str:
    """A grep basic regular expression as a Python regular expression (GNU extensions included)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    classes = {
        "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
        "space": r" \t\n\r\f\v", "xdigit": "0-9A-Fa-f", "punct": r"!-/:-@\[-`{-~", "blank": r" \t",
    }  # fmt: skip
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            d = pattern[i + 1]
            if d in "(){}|+?":
                out.append(d)
            elif d in "<>":
                out.append(r"\b")
            elif d in "wWsSbB" or d.isdigit():
                out.append("\\" + d)
            else:
                out.append("\\" + d if not d.isalnum() else d)
            i += 2
            continue
        if c in "(){}|+?":
            out.append("\\" + c)
        elif c == "*" and (not out or out[-1] in ("^", "(")):
            out.append(r"\*")
        elif c == "[":
            j = i + 1
            part = ["["]
            if j < n and pattern[j] == "^":
                part.append("^")
                j += 1
            if j < n and pattern[j] == "]":
                part.append(r"\]")
                j += 1
            closed = False
            while j < n:
                ch = pattern[j]
                if ch == "]":
                    closed = True
                    break
                if ch == "[" and pattern.startswith("[:", j):
                    k = pattern.find(":]", j + 2)
                    if k > 0 and pattern[j + 2 : k] in classes:
                        part.append(classes[pattern[j + 2 : k]])
                        j = k + 2
                        continue
                part.append("\\" + ch if ch in "[\\" else ch)
                j += 1
            if not closed:
                out.append(r"\[")
                i += 1
                continue
            part.append("]")
            out.append("".join(part))
            i = j + 1
            continue
        elif c == "^" and out:
            out.append(r"\^")
        elif c == "$" and i != n - 1:
            out.append(r"\$")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _matcher(term: str):
    import re

    try:
        rx = re.compile(bre_to_python(term))
    except re.error:
        return lambda line: term in line
    return lambda line: rx.search(line) is not None


def _is_binary(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return b"\0" in fh.read(32768)
    except OSError:
        return True


def _lines(text: str) -> list[str]:
    """The lines of `text` as grep sees them (no phantom empty line after a final newline)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _matching_lines(path: str, match) -> list[int]:
    try:
        text = read_text(path)
    except OSError:
        return []
    return [i + 1 for i, line in enumerate(_lines(text)) if match(line)]


def tool_search_dir(state: State, args: dict) -> str:
    if "args" in args:
        parts = shell_split(args["args"])
        if len(parts) not in (1, 2):
            raise ToolError("Usage: search_dir <search_term> [<dir>]")
        args = {"search_term": parts[0], "dir": parts[1] if len(parts) > 1 else None}
    term = args.get("search_term")
    if term is None or term == "":
        raise ToolError("Usage: search_dir <search_term> [<dir>]")
    directory = args.get("dir") or "./"
    if not os.path.isdir(directory):
        raise ToolError(f"Directory {directory} not found")
    directory = os.path.realpath(directory)
    match = _matcher(term)
    counts: dict[str, int] = {}
    if "/." in directory:  # find's ``! -path '*/.*'`` excludes everything below a hidden directory
        return f'No matches found for "{term}" in {directory}'
    for entry in _find_order(directory, skip_hidden=True):
        if not entry.is_file(follow_symlinks=False):
            continue
        if _is_binary(entry.path):
            continue
        hits = len(_matching_lines(entry.path, match))
        if hits:
            counts[entry.path] = hits
    if not counts:
        return f'No matches found for "{term}" in {directory}'
    if len(counts) > 100:
        return (
            f'More than {len(counts)} files matched for "{term}" in {directory}. Please narrow your search.'
        )
    total = sum(counts.values())
    lines = [f'Found {total} matches for "{term}" in {directory}:']
    lines += [f"{path} ({counts[path]} matches)" for path in sorted(counts)]
    lines.append(f'End of matches for "{term}" in {directory}')
    return "\n".join(lines)


def tool_search_file(state: State, args: dict) -> str:
    if "args" in args:
        parts = shell_split(args["args"])
        args = {"search_term": parts[0] if parts else None, "file": parts[1] if len(parts) > 1 else None}
    term = args.get("search_term")
    if term is None or term == "":
        raise ToolError("Usage: search_file <search_term> [<file>]")
    path = args.get("file")
    if path:
        if not os.path.isfile(path):
            raise ToolError(
                "Usage: search_file <search_term> [<file>]\n"
                f"Error: File name {path} not found. Please provide a valid file name."
            )
    else:
        path = state.get("open_file")
        if not path:
            raise ToolError("No file open. Use the open command first.")
    path = os.path.realpath(path)
    all_lines = _lines(read_text(path))
    hits = _matching_lines(path, _matcher(term))
    if not hits:
        return f'No matches found for "{term}" in {path}'
    if len(hits) > 100:
        return f'More than {len(hits)} lines matched for "{term}" in {path}. Please narrow your search.'
    lines = [f'Found {len(hits)} matches for "{term}" in {path}:']
    lines += [f"Line {n}:{all_lines[n - 1]}" for n in hits]
    lines.append(f'End of matches for "{term}" in {path}')
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# submit


def tool_submit(state: State, args: dict) -> str:
    import subprocess

    repo = args.get("repo") or state.get("repo") or "/testbed"
    base = args.get("base") or state.get("base")
    add = subprocess.run(["git", "add", "-A"], cwd=repo, capture_output=True, text=True)
    if add.returncode != 0:
        raise ToolError(f"Error: `git add -A` failed in {repo}:\n{add.stderr.strip()}")
    cmd = ["git", "-c", "core.quotepath=off", "diff", "--cached", "--binary"]
    if base:
        cmd.append(base)
    diff = subprocess.run(cmd, cwd=repo, capture_output=True)
    if diff.returncode != 0:
        raise ToolError(
            f"Error: `git diff` failed in {repo}:\n{diff.stderr.decode(errors='replace').strip()}"
        )
    return diff.stdout.decode("utf-8", errors="surrogateescape")


# ----------------------------------------------------------------------------------------------------
# str_replace_editor


def _truncate(content: str) -> str:
    if len(content) <= MAX_RESPONSE_LEN:
        return content
    return content[:MAX_RESPONSE_LEN] + TRUNCATED_MESSAGE


def _cat_n(content: str, descriptor: str, init_line: int = 1) -> str:
    content = _truncate(content).expandtabs()
    numbered = "\n".join(f"{i + init_line:6}\t{line}" for i, line in enumerate(content.split("\n")))
    return f"Here's the result of running `cat -n` on {descriptor}:\n{numbered}\n"


def _legacy_editor_args(raw: str) -> dict:
    parts = shell_split(raw)
    out: dict = {}
    positional = []
    i = 0
    while i < len(parts):
        p = parts[i]
        if p.startswith("--") and p[2:] in ("file_text", "old_str", "new_str", "insert_line"):
            out[p[2:]] = parts[i + 1] if i + 1 < len(parts) else ""
            i += 2
        elif p == "--view_range":
            out["view_range"] = parts[i + 1 : i + 3]
            i += 3
        else:
            positional.append(p)
            i += 1
    if positional:
        out["command"] = positional[0]
    if len(positional) > 1:
        out["path"] = positional[1]
    return out


def _view_range(value) -> list:
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            value = value.replace(",", " ").strip("[] ").split()
    if not isinstance(value, (list, tuple)):
        raise ToolError("Invalid `view_range`. It should be a list of two integers.")
    try:
        out = [int(v) for v in value]
    except (TypeError, ValueError):
        raise ToolError("Invalid `view_range`. It should be a list of two integers.") from None
    if len(out) != 2:
        raise ToolError("Invalid `view_range`. It should be a list of two integers.")
    return out


def tool_str_replace_editor(state: State, args: dict) -> str:
    if "args" in args:
        args = _legacy_editor_args(args["args"])
    command = args.get("command")
    path = args.get("path")
    if not command:
        raise ToolError("Parameter `command` is required for str_replace_editor.")
    if not path:
        raise ToolError("Parameter `path` is required for str_replace_editor.")
    commands = ("view", "create", "str_replace", "insert", "undo_edit")
    if command not in commands:
        raise ToolError(
            f"Unrecognized command {command}. The allowed commands for the str_replace_editor tool are: "
            + ", ".join(f'"{c}"' for c in commands)
        )
    if not os.path.isabs(path):
        suggested = os.path.join(os.getcwd(), path)
        raise ToolError(
            f"The path {path} is not an absolute path, it should start with `/`. Maybe you meant {suggested}?"
        )
    exists = os.path.exists(path)
    if not exists and command != "create":
        raise ToolError(f"The path {path} does not exist. Please provide a valid path.")
    if exists and command == "create":
        raise ToolError(f"File already exists at: {path}. Cannot overwrite files using command `create`.")
    if os.path.isdir(path) and command != "view":
        raise ToolError(
            f"The path {path} is a directory and only the `view` command can be used on directories"
        )

    if command == "view":
        return _editor_view(path, args.get("view_range"))
    if command == "create":
        if args.get("file_text") is None:
            raise ToolError("Parameter `file_text` is required for command: create")
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            raise ToolError(f"The parent directory {parent} does not exist. Please create it first.")
        write_text(path, args["file_text"])
        state.push_history(os.path.realpath(path), None)
        return f"File created successfully at: {path}"
    if command == "str_replace":
        if args.get("old_str") is None:
            raise ToolError("Parameter `old_str` is required for command: str_replace")
        return _editor_str_replace(state, path, args["old_str"], args.get("new_str") or "")
    if command == "insert":
        if args.get("insert_line") is None or str(args.get("insert_line")).strip() == "":
            raise ToolError("Parameter `insert_line` is required for command: insert")
        if args.get("new_str") is None:
            raise ToolError("Parameter `new_str` is required for command: insert")
        return _editor_insert(state, path, as_int(args["insert_line"], "insert_line"), args["new_str"])
    return _editor_undo(state, path)


def _editor_view(path: str, view_range) -> str:
    if os.path.isdir(path):
        if view_range:
            raise ToolError("The `view_range` parameter is not allowed when `path` points to a directory.")
        root = path.rstrip("/") or "/"
        found = [path]

        def walk(d: str, depth: int) -> None:
            try:
                entries = list(os.scandir(d))
            except OSError:
                return
            for e in entries:
                if e.name.startswith("."):
                    continue
                found.append(e.path)
                if depth < 2 and e.is_dir(follow_symlinks=False):
                    walk(e.path, depth + 1)

        walk(root, 1)
        listing = "\n".join(found)
        return f"Here's the files and directories up to 2 levels deep in {path}, excluding hidden items:\n{listing}\n\n"
    content = read_text(path)
    init_line = 1
    if view_range:
        first, last = _view_range(view_range)
        lines = content.split("\n")
        n = len(lines)
        if first < 1 or first > n:
            raise ToolError(
                f"Invalid `view_range`: {[first, last]}. Its first element `{first}` should be within the "
                f"range of lines of the file: {[1, n]}"
            )
        if last > n:
            raise ToolError(
                f"Invalid `view_range`: {[first, last]}. Its second element `{last}` should be smaller than "
                f"the number of lines in the file: `{n}`"
            )
        if last != -1 and last < first:
            raise ToolError(
                f"Invalid `view_range`: {[first, last]}. Its second element `{last}` should be larger or equal "
                f"than its first `{first}`"
            )
        if last == -1:
            last = n
        content = "\n".join(lines[first - 1 : last])
        init_line = first
    return _cat_n(content, path, init_line)


def _editor_str_replace(state: State, path: str, old: str, new: str) -> str:
    content = read_text(path)
    count = content.count(old) if old else 0
    if count == 0:
        raise ToolError(f"No replacement was performed, old_str `{old}` did not appear verbatim in {path}.")
    if count > 1:
        lines = [i + 1 for i, line in enumerate(content.split("\n")) if old in line]
        if not lines:  # a multi-line old_str: report where each occurrence starts
            lines, pos = [], content.find(old)
            while pos >= 0:
                lines.append(content.count("\n", 0, pos) + 1)
                pos = content.find(old, pos + 1)
        raise ToolError(
            f"No replacement was performed. Multiple occurrences of old_str `{old}` in lines {lines}. "
            "Please ensure it is unique"
        )
    if new == old:
        raise ToolError(f"No replacement was performed, old_str `{old}` is the same as new_str `{new}`.")
    new_content = content.replace(old, new)
    write_text(path, new_content, like=path)
    state.push_history(os.path.realpath(path), content)
    at = content.split(old)[0].count("\n")
    start = max(1, at - SNIPPET_LINES)
    end = min(at + SNIPPET_LINES + new.count("\n"), len(new_content.splitlines()))
    snippet = "\n".join(new_content.split("\n")[start - 1 : end])
    return (
        f"The file {path} has been edited. "
        + _cat_n(snippet, f"a snippet of {path}", start)
        + "Review the changes and make sure they are as expected. Edit the file again if necessary."
    )


def _editor_insert(state: State, path: str, line: int, new: str) -> str:
    content = read_text(path)
    lines = content.split("\n")
    n = len(lines)
    if line < 0 or line > n:
        raise ToolError(
            f"Invalid `insert_line` parameter: {line}. It should be within the range of lines of the file: {[0, n]}"
        )
    new_lines = new.split("\n")
    new_content = "\n".join(lines[:line] + new_lines + lines[line:])
    snippet = "\n".join(
        lines[max(0, line - SNIPPET_LINES) : line] + new_lines + lines[line : line + SNIPPET_LINES]
    )
    write_text(path, new_content, like=path)
    state.push_history(os.path.realpath(path), content)
    return (
        f"The file {path} has been edited. "
        + _cat_n(snippet, "a snippet of the edited file", max(1, line - SNIPPET_LINES + 1))
        + "Review the changes and make sure they are as expected (correct indentation, no duplicate lines, "
        "etc). Edit the file again if necessary."
    )


def _editor_undo(state: State, path: str) -> str:
    found, previous = state.pop_history(os.path.realpath(path))
    if not found:
        raise ToolError(f"No edit history found for {path}.")
    if previous is None:  # the last edit created the file
        os.remove(path)
        return f"Last edit to {path} undone successfully. The file did not exist before it and was removed."
    write_text(path, previous, like=path)
    return f"Last edit to {path} undone successfully. {_cat_n(previous, path)}"


# ----------------------------------------------------------------------------------------------------
# entry point


def _configure(state: State, args: dict) -> str:
    """Internal: set the settings (repo, base commit, window, overlap) and forget the open file."""
    for key in ("repo", "base", "window", "overlap", "style"):
        if key in args:
            state.set(key, args[key])
    state.set("open_file", None)
    state.set("first_line", 0)
    state.set("current_line", 0)
    return ""


# The tools are this script's functions named ``tool_<name>``: no second list to keep in step with the
# host's (`trajectories.tools.TOOL_SPECS`; tests/test_tools.py checks that the two agree). ``_configure``
# is the runtime's own call (repository root, base commit, window settings), not a tool.
TOOLS = {name[len("tool_") :]: fn for name, fn in list(globals().items()) if name.startswith("tool_")}
TOOLS["_configure"] = _configure


def run(tool: str, args: dict, state: State) -> tuple[str, int]:
    """Run one tool; (observation, exit status). Never raises for a tool's own errors."""
    fn = TOOLS.get(tool)
    if fn is None:
        return (
            f"Unknown tool {tool!r}. Known tools: {', '.join(t for t in TOOLS if not t.startswith('_'))}",
            2,
        )
    try:
        return fn(state, args), 0
    except ToolError as exc:
        return str(exc), 1
    finally:
        state.save()


def _load_args(rest: list[str]) -> dict:
    """Arguments from the command line: name/value pairs, one JSON object, or ``@file`` (JSON, removed)."""
    if len(rest) == 1 and rest[0].lstrip().startswith(("{", "@")):
        import json

        raw = rest[0].lstrip()
        if raw.startswith("@"):
            path = raw[1:]
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                raw = fh.read()
            os.remove(path)
        args = json.loads(raw) if raw.strip() else {}
        if not isinstance(args, dict):
            raise ValueError("the arguments must be a JSON object")
    else:
        if len(rest) % 2:
            raise ValueError("expected <name> <value> pairs")
        args = {rest[i]: rest[i + 1] for i in range(0, len(rest), 2)}
    return {k: v for k, v in args.items() if v is not None}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stdout.write("usage: tools.py <tool> [<name> <value>]... | '<json object>' | @<json file>\n")
        return 2
    try:
        args = _load_args(argv[2:])
    except (OSError, ValueError) as exc:
        sys.stdout.write(f"Error: could not read the arguments of {argv[1]}: {exc}\n")
        return 2
    text, status = run(argv[1], args, State())
    if text:
        out = sys.stdout.buffer
        out.write(text.encode("utf-8", errors="surrogateescape"))
        if not text.endswith("\n"):
            out.write(b"\n")
        out.flush()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
