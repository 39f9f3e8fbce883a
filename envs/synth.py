"""Synthesized tasks: small AST-level mutations of a function in a real release (SWE-smith's procedural
method, no model needed).

A mutation is found on the syntax tree of one function and applied as a minimal *text* edit at the
node's position, so the rest of the file (comments, formatting) is untouched and the gold patch (the
inverse edit) is a few lines. Kinds:

- ``swap_operator``: ``+`` <-> ``-``, ``<`` -> ``<=``, ``==`` <-> ``!=``, ``in`` <-> ``not in``, ``and`` <-> ``or``,
  augmented assignments (``+=`` -> ``-=``), ...
- ``invert_condition``: ``if x`` -> ``if not x`` (and ``if not x`` -> ``if x``), conditional expressions and
  comprehension filters;
- ``shift_bound``: ``range(n)`` -> ``range(n - 1)``, slice bounds, ``x[i]`` -> ``x[i + 1]``, an integer compared
  against (``n > 0`` -> ``n > 1``);
- ``drop_statement``: a statement of a block that is neither its first nor its only one (never a docstring);
- ``swap_arguments``: two adjacent positional arguments of a call;
- ``change_constant``: ``True`` <-> ``False``, other integers ``n`` -> ``n + 1``, short strings reversed.

A site is named by the function's qualified name, the kind and its index among that function's sites of
that kind (in source order), so the same recipe finds the same edit on every machine
(`find_site`). `materialize_synth` turns a recipe into the mutated commit (its tree made on top of the
release's commit with `envs.pypi.child_commit`, stored as a root commit so the agent's repository holds
no trace of the original) and the gold patch. Pure Python + git; nothing here runs tests.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from envs.spec import is_test_path

KINDS = (
    "swap_operator",
    "invert_condition",
    "shift_bound",
    "drop_statement",
    "swap_arguments",
    "change_constant",
)

#: Keys of a ``synth`` recipe (the task file stores these, never the patch).
RECIPE_KEYS = ("package", "version", "file", "function", "mutation", "index", "seed")


class SynthError(ValueError):
    """A recipe or a source file cannot be mutated as asked; the message says which and why."""


@dataclass(frozen=True)
class MutationSite:
    """One possible edit: replace ``source[start:end]`` (== `original`) with `replacement`."""

    path: str
    function: str  # qualified name, e.g. "Cache.get" or "outer.inner"
    kind: str
    index: int  # among this function's sites of this kind, in source order
    lineno: int
    start: int  # character offsets into the source text
    end: int
    original: str
    replacement: str

    def describe(self) -> str:
        old = " ".join(self.original.split())[:60]
        new = " ".join(self.replacement.split())[:60]
        return f"{self.path}:{self.lineno} {self.function} {self.kind}#{self.index}: {old!r} -> {new!r}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------ positions


class _Text:
    """Character offsets of AST positions (``col_offset`` counts UTF-8 bytes)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = source.split("\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def offset(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        if not line.isascii():
            col = len(line.encode("utf-8")[:col].decode("utf-8", errors="replace"))
        return self.starts[lineno - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),
            self.offset(node.end_lineno, node.end_col_offset),
        )

    def text(self, node: ast.AST) -> str:
        a, b = self.span(node)
        return self.source[a:b]


_COMMENT_RE = re.compile(r"#[^\n]*")


def _operator_in_gap(t: _Text, a: int, b: int, symbol: str) -> tuple[int, int] | None:
    """The span of the operator `symbol` between offsets a and b (only parentheses, blanks, line
    continuations and comments may surround it), or None."""
    gap = _COMMENT_RE.sub(lambda m: " " * len(m.group()), t.source[a:b])
    core = [i for i, ch in enumerate(gap) if not (ch.isspace() or ch in "()\\")]
    if not core:
        return None
    lo, hi = core[0], core[-1] + 1
    if " ".join(gap[lo:hi].split()) != symbol:
        return None
    if any(not (ch.isspace() or ch in "()\\") for ch in gap[:lo] + gap[hi:]):
        return None
    return a + lo, a + hi


# ------------------------------------------------------------------------------------------ tables

_BINOP = {
    ast.Add: ("+", "-"),
    ast.Sub: ("-", "+"),
    ast.Mult: ("*", "/"),
    ast.Div: ("/", "*"),
    ast.FloorDiv: ("//", "%"),
    ast.Mod: ("%", "//"),
    ast.Pow: ("**", "*"),
    ast.BitOr: ("|", "&"),
    ast.BitAnd: ("&", "|"),
    ast.BitXor: ("^", "|"),
    ast.LShift: ("<<", ">>"),
    ast.RShift: (">>", "<<"),
}
_CMPOP = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"),
    ast.Is: ("is", "is not"),
    ast.IsNot: ("is not", "is"),
}
_BOOLOP = {ast.And: ("and", "or"), ast.Or: ("or", "and")}

#: Expressions that need parentheses before ``not`` / ``- 1`` can be attached to them.
_LOOSE = (ast.BoolOp, ast.IfExp, ast.Lambda, ast.NamedExpr, ast.Compare, ast.UnaryOp, ast.Await, ast.Yield)


#: Statements longer than this are not dropped (the gold patch stays a few lines).
_MAX_DROP_LINES = 4


def _is_int(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


# ------------------------------------------------------------------------------------------ collection


class _FunctionNodes(ast.NodeVisitor):
    """The nodes that belong to one function: its body and defaults, not nested defs or annotations."""

    def __init__(self) -> None:
        self.nodes: list[ast.AST] = []
        self.in_fstring = 0

    def generic_visit(self, node: ast.AST) -> None:
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "type_comment"):
                continue
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return  # its own function(s); their defaults/decorators are left alone
        if isinstance(node, ast.JoinedStr):
            return  # positions inside f-strings are not reliable across Python versions
        self.nodes.append(node)
        self.generic_visit(node)


def _functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    out: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                out.append((name, child))
                walk(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
            elif not isinstance(child, (ast.expr,)):
                walk(child, prefix)

    walk(tree, "")
    return out


def _function_nodes(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    v = _FunctionNodes()
    for stmt in fn.body:
        v.visit(stmt)
    for d in [*fn.args.defaults, *fn.args.kw_defaults]:
        if d is not None:
            v.visit(d)
    return v.nodes


def _wrap(t: _Text, node: ast.AST) -> str:
    text = t.text(node)
    return f"({text})" if isinstance(node, _LOOSE) or "\n" in text else text


def _shifted(t: _Text, node: ast.expr, delta: int) -> str:
    """Text of `node` plus `delta` (constants folded, ``E - 1`` otherwise)."""
    if _is_int(node):
        return str(node.value + delta)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and _is_int(node.operand):
        return str(-node.operand.value + delta)
    text = t.text(node)
    if isinstance(node, (*_LOOSE, ast.Starred)) or "\n" in text:
        text = f"({text})"
    return f"{text} {'+' if delta > 0 else '-'} {abs(delta)}"


def _edits(t: _Text, nodes: list[ast.AST], fn: ast.AST) -> list[tuple[str, int, int, str]]:
    """(kind, start, end, replacement) for every mutation among `nodes` of one function."""
    out: list[tuple[str, int, int, str]] = []
    src = t.source
    compared: set[int] = set()  # ids of int constants a comparison uses (a bound, not a constant)
    bounds: set[int] = set()  # ids of nodes shift_bound already changes

    def op_edit(kind: str, left: ast.AST, right: ast.AST, pair: tuple[str, str]) -> None:
        a, b = t.span(left)[1], t.span(right)[0]
        span = _operator_in_gap(t, a, b, pair[0])
        if span:
            out.append((kind, span[0], span[1], pair[1]))

    for node in [fn, *nodes]:
        # -- swap_operator
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOP:
            op_edit("swap_operator", node.left, node.right, _BINOP[type(node.op)])
        elif isinstance(node, ast.AugAssign) and type(node.op) in _BINOP:
            old, new = _BINOP[type(node.op)]
            op_edit("swap_operator", node.target, node.value, (old + "=", new + "="))
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                if type(op) in _CMPOP:
                    op_edit("swap_operator", operands[i], operands[i + 1], _CMPOP[type(op)])
            for operand in operands:
                if _is_int(operand):
                    compared.add(id(operand))
        elif isinstance(node, ast.BoolOp):
            pair = _BOOLOP[type(node.op)]
            for left, right in zip(node.values, node.values[1:], strict=False):
                op_edit("swap_operator", left, right, pair)

        # -- invert_condition
        tests: list[ast.expr] = []
        if isinstance(node, (ast.If, ast.IfExp)):
            tests.append(node.test)
        elif isinstance(node, ast.comprehension):
            tests.extend(node.ifs)
        for test in tests:
            a, b = t.span(test)
            if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
                out.append(("invert_condition", a, b, t.text(test.operand)))
            else:
                out.append(("invert_condition", a, b, "not " + _wrap(t, test)))

        # -- shift_bound
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "range"
            and 1 <= len(node.args) <= 3
            and not node.keywords
            and not any(isinstance(a, ast.Starred) for a in node.args)
        ):
            stop = node.args[0] if len(node.args) == 1 else node.args[1]
            a, b = t.span(stop)
            out.append(("shift_bound", a, b, _shifted(t, stop, -1)))
            bounds.add(id(stop))
        elif isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Del):
            sl = node.slice
            if isinstance(sl, ast.Slice):
                for bound, delta in ((sl.lower, 1), (sl.upper, -1)):
                    if bound is not None:
                        a, b = t.span(bound)
                        out.append(("shift_bound", a, b, _shifted(t, bound, delta)))
                        bounds.add(id(bound))
            elif isinstance(sl, (ast.Name, ast.BinOp)) and isinstance(node.ctx, ast.Load):
                a, b = t.span(sl)
                out.append(("shift_bound", a, b, _shifted(t, sl, 1)))
                bounds.add(id(sl))

        # -- drop_statement
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if not isinstance(block, list) or len(block) < 2 or isinstance(node, ast.expr):
                continue
            first = 2 if _is_docstring(block[0]) else 1  # a docstring is not the block's first statement
            for stmt in block[first:]:
                if (
                    stmt.end_lineno - stmt.lineno >= _MAX_DROP_LINES
                    or _is_docstring(stmt)
                    or isinstance(
                        stmt,
                        (
                            ast.Pass,
                            ast.Global,
                            ast.Nonlocal,
                            ast.FunctionDef,
                            ast.AsyncFunctionDef,
                            ast.ClassDef,
                        ),
                    )
                ):
                    continue
                a, b = t.span(stmt)
                line_start = t.starts[stmt.lineno - 1]
                line_end = src.find("\n", b)
                line_end = len(src) if line_end < 0 else line_end + 1
                tail = _COMMENT_RE.sub("", src[b:line_end])
                if src[line_start:a].strip() or tail.strip():
                    continue  # shares a line with other code (`a; b`)
                out.append(("drop_statement", line_start, line_end, ""))

        # -- swap_arguments
        if isinstance(node, ast.Call) and len(node.args) >= 2:
            if not any(isinstance(a, ast.Starred) for a in node.args):
                for x, y in zip(node.args, node.args[1:], strict=False):
                    tx, ty = t.text(x), t.text(y)
                    if tx == ty:
                        continue
                    (a, xe), (ys, b) = t.span(x), t.span(y)
                    out.append(("swap_arguments", a, b, ty + src[xe:ys] + tx))

    # -- change_constant (and compared integers, which are bounds)
    for node in nodes:
        if not isinstance(node, ast.Constant) or id(node) in bounds:
            continue
        a, b = t.span(node)
        value = node.value
        if isinstance(value, bool):
            out.append(("change_constant", a, b, str(not value)))
        elif type(value) is int:
            kind = "shift_bound" if id(node) in compared else "change_constant"
            out.append((kind, a, b, str(value + 1)))
        elif isinstance(value, str) and 2 <= len(value) <= 20 and value[::-1] != value:
            text = src[a:b]
            quote = text[:1]
            if quote in "'\"" and text == quote + value + quote and "\\" not in text and "\n" not in value:
                out.append(("change_constant", a, b, quote + value[::-1] + quote))
    return out


def enumerate_mutations(source_text: str, path: str) -> list[MutationSite]:
    """Every mutation site in the functions of a Python source file, in a deterministic order (by
    function, then kind, then position). Unparsable files have none."""
    try:
        tree = ast.parse(source_text)
    except (SyntaxError, ValueError):
        return []
    t = _Text(source_text)
    found: dict[tuple[str, str], set[tuple[int, int, str]]] = {}
    order: list[str] = []
    for qualname, fn in _functions(tree):
        if qualname not in order:
            order.append(qualname)
        for kind, a, b, repl in _edits(t, _function_nodes(fn), fn):
            if source_text[a:b] != repl:
                found.setdefault((qualname, kind), set()).add((a, b, repl))
    sites: list[MutationSite] = []
    for qualname in order:
        for kind in KINDS:
            for i, (a, b, repl) in enumerate(sorted(found.get((qualname, kind), ()))):
                lineno = source_text.count("\n", 0, a) + 1
                sites.append(MutationSite(path, qualname, kind, i, lineno, a, b, source_text[a:b], repl))
    return sites


def apply_mutation(source_text: str, site: MutationSite) -> str:
    """`source_text` with the site's edit applied (a `SynthError` when the text there is not the site's)."""
    if source_text[site.start : site.end] != site.original:
        raise SynthError(f"{site.path}: the text at {site.describe()} does not match the source")
    return source_text[: site.start] + site.replacement + source_text[site.end :]


def find_site(source_text: str, path: str, function: str, kind: str, index: int) -> MutationSite:
    """The site a recipe names: `function`'s `index`-th site of `kind` in the file (clear error if none)."""
    if kind not in KINDS:
        raise SynthError(f"recipe field 'mutation': expected one of {', '.join(KINDS)}, got {kind!r}")
    sites = [s for s in enumerate_mutations(source_text, path) if s.function == function and s.kind == kind]
    if not 0 <= index < len(sites):
        known = sorted({s.function for s in enumerate_mutations(source_text, path)})
        where = f"{len(sites)} {kind} site(s)" if function in known else "no such function"
        raise SynthError(
            f"recipe: {path}: {function} has {where}; index {index} does not exist"
            + ("" if function in known else f" (functions: {', '.join(known[:12])})")
        )
    return sites[index]


def is_source_file(path: str) -> bool:
    """Python files of the package itself: not tests, docs, examples, benchmarks or build scripts."""
    if not path.endswith(".py") or is_test_path(path):
        return False
    parts = path.split("/")
    skip = {"docs", "doc", "examples", "example", "benchmarks", "bench", "scripts", "tools", "ci", ".github"}
    if any(p in skip for p in parts[:-1]):
        return False
    vendored = {
        "setup.py",
        "conftest.py",
        "noxfile.py",
        "tasks.py",
        "fabfile.py",
        "_version.py",
        "versioneer.py",
    }
    return parts[-1] not in vendored


# ------------------------------------------------------------------------------------------ statements

_SECTION_RE = re.compile(r"^_{3,} (?P<title>.+?) _{3,}$")
_SUMMARY_RE = re.compile(r"^(?:FAILED|ERROR) (?P<rest>\S.*)$")
_BANNER_RE = re.compile(r"^={3,} .*\S.* ={3,}$")
_ADDRESS_RE = re.compile(r" at 0x[0-9a-fA-F]+")
_MAX_LINE = 200


def failure_sections(output: str) -> dict[str, list[str]]:
    """pytest's failure sections (``-rA --tb=short [-l]``) by the header title (``test_x`` or
    ``Class.test_x``), each as its lines."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        m = _SECTION_RE.match(line)
        if m:
            current = sections.setdefault(m["title"], [])
            continue
        if _BANNER_RE.match(line):
            current = None  # the next "== short test summary info ==" / "== PASSES ==" banner
            continue
        if current is not None:
            current.append(line)
    return sections


def _section_for(test_id: str, sections: dict[str, list[str]]) -> list[str]:
    """The section of `test_id` (pytest titles it by class + function, without the file)."""
    parts = test_id.split("::")[1:]
    for title in (".".join(parts), parts[-1] if parts else test_id):
        if title in sections:
            return sections[title]
        for name, lines in sections.items():  # a subtest: "Class.test_x (param=1)"
            if name.startswith(title + " ("):
                return lines
    return []


_FRAME_RE = re.compile(r"^(?P<path>[^\s:]+\.py):\d+: in \S+")


def _failure_lines(section: list[str]) -> list[str]:
    """What a failure section shows from the tests' side: for frames in test files, the code lines and
    local variables pytest prints (``--tb=short -l``: observed vs expected values even where an assert in a
    helper module was not rewritten), and the ``E`` lines (assertion with values, or exception + message);
    frames in the package's own files are left out."""
    out: list[str] = []
    in_test = False
    for line in section:
        if line.startswith("----"):
            break  # captured output sections follow the traceback
        m = _FRAME_RE.match(line)
        if m:
            in_test = is_test_path(m["path"])
            continue
        if line.startswith("E ") or (in_test and line.strip()):
            line = _ADDRESS_RE.sub("", line.rstrip())  # object addresses differ from run to run
            out.append(line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 3] + "...")
    return out


def _summary_messages(output: str) -> dict[str, str]:
    from_summary: dict[str, str] = {}
    for line in output.splitlines():
        m = _SUMMARY_RE.match(line)
        if m and " - " in m["rest"]:
            test, _, message = m["rest"].partition(" - ")
            from_summary[test.strip()] = message.strip()
    return from_summary


def problem_statement(
    package: str,
    failing: list[str],
    output: str,
    hide: list[str],
    max_tests: int = 4,
    max_lines: int = 14,
) -> str:
    """An issue-like statement written from the failing tests' output: which tests fail and what they
    observed (pytest's ``E`` lines: the assertion with observed vs expected values, or the exception type
    and message). Lines that mention any word in `hide` (the mutated function's name, the file) are left
    out, unless a failing test's own name contains it."""
    names = " ".join(failing)
    words = [w for w in hide if w and w not in names]
    # a name is hidden wherever it occurs (also inside `orig_check_valid`); only names shorter than four
    # characters need letters or digits around them to count as another word (`get` in `together`)
    pats = [
        re.compile(rf"(?<![A-Za-z0-9]){re.escape(w)}(?![A-Za-z0-9])") if len(w) < 4 else None for w in words
    ]

    def hidden(line: str) -> bool:
        return any((p.search(line) if p else w in line) for w, p in zip(words, pats, strict=True))

    sections = failure_sections(output)
    messages = _summary_messages(output)
    suite = "the test suite" if hidden(package) else f"the {package} test suite"  # e.g. tabulate.tabulate
    n = len(failing)
    lines = [
        f"{n} test{'s' if n != 1 else ''} of {suite} fail{'s' if n == 1 else ''}; "
        "the rest of the suite passes.",
        "",
    ]
    for test in failing[:max_tests]:
        shown = [ln for ln in _failure_lines(_section_for(test, sections)) if not hidden(ln)][:max_lines]
        if not any(ln.startswith("E ") for ln in shown):
            msg = messages.get(test, "")
            if msg and not hidden(msg):
                shown.append("E   " + msg)
            elif msg:
                shown.append("E   " + msg.split(":", 1)[0].split()[0])
        lines.append(f"`{test}` fails:")
        if shown:
            lines += ["```", *shown, "```"]
        lines.append("")
    if n > max_tests:
        rest = ", ".join(f"`{t}`" for t in failing[max_tests : max_tests + 8])
        more = f" and {n - max_tests - 8} more" if n > max_tests + 8 else ""
        lines += [f"Also failing: {rest}{more}.", ""]
    lines.append("The failing tests should pass again without breaking the others.")
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------ recipes


def make_recipe(package: str, version: str, site: MutationSite, seed: int) -> dict[str, Any]:
    return {
        "kind": "synth",
        "package": package,
        "version": version,
        "file": site.path,
        "function": site.function,
        "mutation": site.kind,
        "index": site.index,
        "seed": seed,
    }


def recipe_id(recipe: dict[str, Any]) -> str:
    """A task id that names the release but not the mutated file or function."""
    key = json.dumps({k: recipe.get(k) for k in RECIPE_KEYS if k != "seed"}, sort_keys=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{recipe['package']}-{recipe['version']}")
    return f"{name}-synth-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _check_recipe(recipe: dict[str, Any]) -> None:
    missing = [k for k in RECIPE_KEYS if k not in recipe]
    if missing:
        raise SynthError(
            f"synth recipe: missing field(s) {', '.join(missing)} (expected {', '.join(RECIPE_KEYS)})"
        )
    if not isinstance(recipe["index"], int) or recipe["index"] < 0:
        raise SynthError(f"synth recipe field 'index': expected an integer >= 0, got {recipe['index']!r}")


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C", **(env or {})}
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=full_env)
    if proc.returncode != 0:
        raise SynthError(f"git {' '.join(args)} in {repo} failed: {proc.stderr.strip()}")
    return proc.stdout


def file_at(repo: Path, commit: str, path: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, text=False
    )
    if proc.returncode != 0:
        raise SynthError(f"synth recipe field 'file': {path} is not in the release (commit {commit[:12]})")
    return proc.stdout.decode("utf-8")


def diff_commits(repo: Path, old: str, new: str, path: str) -> str:
    """The unified diff of `path` from commit `old` to commit `new` (what ``git apply`` reads)."""
    return _git(repo, "diff", "--no-color", "--no-ext-diff", "--full-index", old, new, "--", path)


def mutated_commit(
    repo: Path, release_commit: str, path: str, mutated_text: str, package: str, version: str
) -> str:
    """The deterministic commit of the mutated tree, with no parent.

    The tree is made by `envs.pypi.child_commit` on top of the release; the task's base commit is a
    root commit holding that same tree (fixed author, date and the release commit's message), so the
    repository an agent gets has one commit, exactly like a release task: with the release as its
    parent, ``git diff HEAD~1`` would print the gold patch.
    """
    from envs.pypi import AUTHOR, EMAIL, EPOCH, child_commit

    child = child_commit(repo, release_commit, {path: mutated_text}, f"{package} {version} (mutated)")
    tree = _git(repo, "rev-parse", f"{child}^{{tree}}").strip()
    message = _git(repo, "log", "-1", "--format=%B", release_commit).strip() + "\n"
    stamp = f"{EPOCH} +0000"
    env = {
        "GIT_AUTHOR_NAME": AUTHOR,
        "GIT_AUTHOR_EMAIL": EMAIL,
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_NAME": AUTHOR,
        "GIT_COMMITTER_EMAIL": EMAIL,
        "GIT_COMMITTER_DATE": stamp,
    }
    root = _git(repo, "commit-tree", tree, "-m", message, env=env).strip()
    _git(repo, "update-ref", f"refs/synth/{root}", root)  # keep it from gc
    return root


def materialize_synth(recipe: dict[str, Any]) -> dict[str, Any]:
    """Repo source, base commit (the mutated tree) and gold patch (mutated -> original) of a recipe."""
    from envs.pypi import sdist_repo

    _check_recipe(recipe)
    package, version = str(recipe["package"]), str(recipe["version"])
    repo, release = sdist_repo(package, version)
    original = file_at(Path(repo), release, recipe["file"])
    site = find_site(original, recipe["file"], recipe["function"], recipe["mutation"], recipe["index"])
    mutated = apply_mutation(original, site)
    base = mutated_commit(Path(repo), release, recipe["file"], mutated, package, version)
    return {
        "repo_source": f"pypi:{package}=={version}",
        "base_commit": base,
        "patch": diff_commits(Path(repo), base, release, recipe["file"]),
        "test_patch": "",
    }
