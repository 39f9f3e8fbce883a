"""Mutation sites: where one function of a release can be changed, and the minimal text edit for each.

See `envs.synth` for the kinds. Pure Python over `ast`; the order of the sites is part of every stored
recipe (a recipe names a site by function, kind and index), so it must not change."""

import ast
import re
from dataclasses import asdict, dataclass
from typing import Any

from envs.spec import is_test_path
from trajectories.errors import SrlSweError

KINDS = (
    "swap_operator",
    "invert_condition",
    "shift_bound",
    "drop_statement",
    "swap_arguments",
    "change_constant",
)


class SynthError(SrlSweError, ValueError):
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


Edits = list[tuple[str, int, int, str]]  # (kind, start, end, replacement)


def _edits(t: _Text, nodes: list[ast.AST], fn: ast.AST) -> Edits:
    """(kind, start, end, replacement) for every mutation among `nodes` of one function.

    The order of the list does not matter (`enumerate_mutations` sorts the sites); the per-node rules run
    before the constants because they mark the integers that are bounds (compared, or shifted already).
    """
    out: Edits = []
    compared: set[int] = set()  # ids of int constants a comparison uses (a bound, not a constant)
    bounds: set[int] = set()  # ids of nodes shift_bound already changes
    for node in [fn, *nodes]:
        _swap_operator(t, node, out, compared)
        _invert_condition(t, node, out)
        _shift_bound(t, node, out, bounds)
        _drop_statement(t, node, out)
        _swap_arguments(t, node, out)
    _change_constant(t, nodes, out, compared, bounds)
    return out


def _op_edit(t: _Text, out: Edits, kind: str, left: ast.AST, right: ast.AST, pair: tuple[str, str]) -> None:
    a, b = t.span(left)[1], t.span(right)[0]
    span = _operator_in_gap(t, a, b, pair[0])
    if span:
        out.append((kind, span[0], span[1], pair[1]))


def _swap_operator(t: _Text, node: ast.AST, out: Edits, compared: set[int]) -> None:
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOP:
        _op_edit(t, out, "swap_operator", node.left, node.right, _BINOP[type(node.op)])
    elif isinstance(node, ast.AugAssign) and type(node.op) in _BINOP:
        old, new = _BINOP[type(node.op)]
        _op_edit(t, out, "swap_operator", node.target, node.value, (old + "=", new + "="))
    elif isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            if type(op) in _CMPOP:
                _op_edit(t, out, "swap_operator", operands[i], operands[i + 1], _CMPOP[type(op)])
        for operand in operands:
            if _is_int(operand):
                compared.add(id(operand))
    elif isinstance(node, ast.BoolOp):
        pair = _BOOLOP[type(node.op)]
        for left, right in zip(node.values, node.values[1:], strict=False):
            _op_edit(t, out, "swap_operator", left, right, pair)


def _invert_condition(t: _Text, node: ast.AST, out: Edits) -> None:
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


def _shift_bound(t: _Text, node: ast.AST, out: Edits, bounds: set[int]) -> None:
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


_NEVER_DROPPED = (ast.Pass, ast.Global, ast.Nonlocal, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _drop_statement(t: _Text, node: ast.AST, out: Edits) -> None:
    src = t.source
    for field in ("body", "orelse", "finalbody"):
        block = getattr(node, field, None)
        if not isinstance(block, list) or len(block) < 2 or isinstance(node, ast.expr):
            continue
        first = 2 if _is_docstring(block[0]) else 1  # a docstring is not the block's first statement
        for stmt in block[first:]:
            if (
                stmt.end_lineno - stmt.lineno >= _MAX_DROP_LINES
                or _is_docstring(stmt)
                or isinstance(stmt, _NEVER_DROPPED)
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


def _swap_arguments(t: _Text, node: ast.AST, out: Edits) -> None:
    if not isinstance(node, ast.Call) or len(node.args) < 2:
        return
    if any(isinstance(a, ast.Starred) for a in node.args):
        return
    for x, y in zip(node.args, node.args[1:], strict=False):
        tx, ty = t.text(x), t.text(y)
        if tx == ty:
            continue
        (a, xe), (ys, b) = t.span(x), t.span(y)
        out.append(("swap_arguments", a, b, ty + t.source[xe:ys] + tx))


def _change_constant(
    t: _Text, nodes: list[ast.AST], out: Edits, compared: set[int], bounds: set[int]
) -> None:
    """Constants (booleans, integers, short strings); compared integers are bounds (``shift_bound``)."""
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
            text = t.source[a:b]
            quote = text[:1]
            if quote in "'\"" and text == quote + value + quote and "\\" not in text and "\n" not in value:
                out.append(("change_constant", a, b, quote + value[::-1] + quote))


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
