"""An in-memory sandbox: `SandboxLike` (plus ``diff``) over a dict file system and a small shell.

The agent loop's unit tests run on it without Docker (`tests/test_agent_loop.py`); see `MemorySandbox`.
"""

from __future__ import annotations

import difflib
import hashlib
import posixpath
import re
import shlex
import subprocess
import sys

from harness.tools.runtime import script_source
from trajectories.errors import SrlSweError


class MemoryExecResult:
    """What `MemorySandbox.exec` answers (the fields `ToolRuntime` reads of `harness.sandbox.ExecResult`)."""

    def __init__(self, exit_code: int, output: str) -> None:
        self.exit_code = exit_code
        self.output = output
        self.timed_out = False

    def __repr__(self) -> str:
        return f"MemoryExecResult(exit_code={self.exit_code}, output={self.output!r})"


class _Exit(SrlSweError):
    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Break(SrlSweError):
    pass


class MemorySandbox:
    """A sandbox whose file system is a dict and whose shell is a small interpreter: `SandboxLike` (plus
    ``diff``) without Docker, for testing the agent loop and the tool runtime's host side.

    The repository at `repo` starts as a committed snapshot of `files` (relative paths -> text);
    ``git diff`` / ``diff()`` / the ``submit`` tool compare the file system with it. The shell runs
    command lists (``;``, ``&&``, ``||``, newlines), ``for NAME in WORDS; do ...; done``,
    ``if LIST; then LIST; [else LIST;] fi``, ``break``, ``$(...)`` inside double quotes, ``>``/``>>``
    redirection and these programs: echo, cat, ls, pwd, cd, rm, mkdir, touch, grep (-n), true, false,
    command -v, git (``rev-parse HEAD``, ``diff``, ``-C DIR``), and python3 (``-c CODE`` runs on the host
    interpreter with no file-system access; the srl-swe tool script runs its ``_configure`` and ``submit``
    tools against this file system). Anything else is ``command not found`` (exit 127), as in a real shell
    without that program: nothing is faked.
    """

    PYTHON = "/usr/bin/python3"

    def __init__(self, files: dict[str, str] | None = None, *, repo: str = "/testbed") -> None:

        self.repo = repo.rstrip("/")
        self.files: dict[str, str] = {}
        self.dirs: set[str] = {"/", "/tmp", self.repo}
        for rel, text in (files or {}).items():
            self._write(f"{self.repo}/{rel}", text)
        self.base = {p: t for p, t in self.files.items() if p.startswith(self.repo + "/")}
        self.head = hashlib.sha1(repr(sorted(self.base.items())).encode()).hexdigest()
        self.cwd = self.repo
        self.commands: list[str] = []
        self.tool_settings: dict[str, str] = {}

    # -- SandboxLike -------------------------------------------------------------------------------
    def exec(self, command: str, timeout: float | None = None) -> MemoryExecResult:
        self.commands.append(command)
        out: list[str] = []
        try:
            code = self._run_list(self._tokens(command), out)
        except _Exit as exc:
            code = exc.code
            if exc.message:
                out.append(exc.message)
        except _Break:
            code = 0
        return MemoryExecResult(code, "".join(out))

    def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        self._write(self._abs(path), data.decode() if isinstance(data, bytes) else data)

    def diff(self, repo: str = "/testbed") -> str:
        """The repository's changes against its snapshot, as ``git diff`` writes them."""
        return self._git_diff(repo.rstrip("/"))

    # -- file system ---------------------------------------------------------------------------------
    def _abs(self, path: str) -> str:

        return posixpath.normpath(path if path.startswith("/") else f"{self.cwd}/{path}")

    def _write(self, path: str, text: str) -> None:

        self.files[path] = text
        d = posixpath.dirname(path)
        while d not in self.dirs:
            self.dirs.add(d)
            d = posixpath.dirname(d)

    def _read(self, path: str, prog: str) -> str:
        p = self._abs(path)
        if p in self.files:
            return self.files[p]
        if p in self.dirs:
            raise _Exit(1, f"{prog}: {path}: Is a directory\n")
        raise _Exit(1, f"{prog}: {path}: No such file or directory\n")

    def _git_diff(self, repo: str) -> str:

        now = {p: t for p, t in self.files.items() if p.startswith(repo + "/")}
        chunks = []
        for path in sorted(set(now) | set(self.base)):
            old, new = self.base.get(path), now.get(path)
            if old == new:
                continue
            rel = path[len(repo) + 1 :]
            head = [f"diff --git a/{rel} b/{rel}\n"]
            if old is None:
                head.append("new file mode 100644\n")
            elif new is None:
                head.append("deleted file mode 100644\n")
            a = f"a/{rel}" if old is not None else "/dev/null"
            b = f"b/{rel}" if new is not None else "/dev/null"
            body = list(
                difflib.unified_diff((old or "").splitlines(True), (new or "").splitlines(True), a, b, n=3)
            )
            lines = [ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in body]
            chunks.append("".join(head + lines))
        return "".join(chunks)

    # -- the shell -------------------------------------------------------------------------------------
    @staticmethod
    def _tokens(command: str) -> list[str]:

        command = re.sub(r"\s*(?:2>&1|[12]?>\s*/dev/null)", "", command)  # no file descriptors here
        lexer = shlex.shlex(command.replace("\n", " ; "), posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        return list(lexer)

    def _run_list(self, toks: list[str], out: list[str]) -> int:
        code, i, op = 0, 0, ";"
        while i < len(toks):
            end = self._end_of_command(toks, i)
            run = op == ";" or (op == "&&" and code == 0) or (op == "||" and code != 0)
            if run and end > i:
                code = self._run_command(toks[i:end], out)
            op = toks[end] if end < len(toks) else ";"
            i = end + 1
        return code

    @staticmethod
    def _end_of_command(toks: list[str], i: int) -> int:
        """Index of the separator that ends the command starting at `i` (compound commands nest)."""
        depth = 0
        for j in range(i, len(toks)):
            t = toks[j]
            if t in ("for", "if") and (j == i or toks[j - 1] in (";", "&&", "||", "do", "then", "else")):
                depth += 1
            elif t in ("done", "fi") and toks[j - 1] == ";":
                depth -= 1
            elif t in (";", "&&", "||") and depth == 0:
                return j
        return len(toks)

    @staticmethod
    def _split_at(toks: list[str], words: tuple[str, ...]) -> list[int]:
        """Positions of the top-level keywords `words` (after a ``;``) in a compound command."""
        found, depth = [], 0
        for j, t in enumerate(toks[1:], 1):
            after_sep = toks[j - 1] in (";", "do", "then", "else")
            if t in ("for", "if") and after_sep:
                depth += 1
            elif t in ("done", "fi") and toks[j - 1] == ";":
                if depth == 0 and t in words:
                    found.append(j)
                depth -= 1
            elif depth == 0 and t in words and (after_sep or t == "in"):
                found.append(j)
        return found

    def _run_command(self, toks: list[str], out: list[str]) -> int:
        if toks[0] == "for":
            name = toks[1]
            do, done = self._split_at(toks, ("do", "done"))
            words = [self._expand(w) for w in toks[3:do] if w != ";"]
            code = 0
            for _ in words:
                try:
                    code = self._run_list(toks[do + 1 : done], out)
                except _Break:
                    break
            del name
            return code
        if toks[0] == "if":
            marks = self._split_at(toks, ("then", "else", "fi"))
            then, fi = marks[0], marks[-1]
            other = marks[1] if len(marks) == 3 else None
            if self._run_list(toks[1:then], []) == 0:
                return self._run_list(toks[then + 1 : other or fi], out)
            return self._run_list(toks[other + 1 : fi], out) if other else 0
        if toks[0] == "break":
            raise _Break()
        argv, target, append = [], None, False
        i = 0
        while i < len(toks):
            if toks[i] in (">", ">>") and i + 1 < len(toks):
                target, append = self._expand(toks[i + 1]), toks[i] == ">>"
                i += 2
                continue
            argv.append(self._expand(toks[i]))
            i += 1
        buf: list[str] = []
        try:
            code = self._program(argv, buf)
        except _Exit as exc:
            code = exc.code
            buf.append(exc.message)
            target = None if code else target
        text = "".join(buf)
        if target is None:
            out.append(text)
        else:
            p = self._abs(target)
            self._write(p, (self.files.get(p, "") if append else "") + text)
        return code

    def _expand(self, word: str) -> str:
        """``$(...)`` substitution (output without trailing newlines)."""
        while "$(" in word:
            start = word.index("$(")
            depth, j = 0, start + 1
            for j in range(start + 1, len(word)):
                depth += {"(": 1, ")": -1}.get(word[j], 0)
                if depth == 0:
                    break
            inner: list[str] = []
            self._run_list(self._tokens(word[start + 2 : j]), inner)
            word = word[:start] + "".join(inner).rstrip("\n") + word[j + 1 :]
        return word

    # -- programs ---------------------------------------------------------------------------------------
    def _program(self, argv: list[str], out: list[str]) -> int:
        prog, args = argv[0], argv[1:]
        if prog in ("python3", "python", self.PYTHON):
            return self._python(args, out)
        handler = getattr(self, f"_prog_{prog.replace('-', '_')}", None)
        if handler is None:
            raise _Exit(127, f"bash: {prog}: command not found\n")
        return handler(args, out)

    def _prog_true(self, args: list[str], out: list[str]) -> int:
        return 0

    def _prog_false(self, args: list[str], out: list[str]) -> int:
        return 1

    def _prog_echo(self, args: list[str], out: list[str]) -> int:
        newline = not (args and args[0] == "-n")
        out.append(" ".join(args[0 if newline else 1 :]) + ("\n" if newline else ""))
        return 0

    def _prog_pwd(self, args: list[str], out: list[str]) -> int:
        out.append(self.cwd + "\n")
        return 0

    def _prog_cd(self, args: list[str], out: list[str]) -> int:
        p = self._abs(args[0] if args else self.repo)
        if p not in self.dirs:
            raise _Exit(1, f"bash: cd: {args[0]}: No such file or directory\n")
        self.cwd = p
        return 0

    def _prog_cat(self, args: list[str], out: list[str]) -> int:
        for a in args:
            out.append(self._read(a, "cat"))
        return 0

    def _prog_touch(self, args: list[str], out: list[str]) -> int:
        for a in args:
            self.files.setdefault(self._abs(a), "")
        return 0

    def _prog_mkdir(self, args: list[str], out: list[str]) -> int:
        for a in (x for x in args if not x.startswith("-")):
            self._write(self._abs(a) + "/.keep", "")
            self.files.pop(self._abs(a) + "/.keep")
        return 0

    def _prog_rm(self, args: list[str], out: list[str]) -> int:
        force = any(a.startswith("-") and "f" in a for a in args)
        for a in (x for x in args if not x.startswith("-")):
            p = self._abs(a)
            gone = [f for f in self.files if f == p or f.startswith(p + "/")]
            if not gone and not force:
                raise _Exit(1, f"rm: cannot remove '{a}': No such file or directory\n")
            for f in gone:
                del self.files[f]
        return 0

    def _prog_ls(self, args: list[str], out: list[str]) -> int:
        paths = [a for a in args if not a.startswith("-")] or ["."]
        for a in paths:
            p = self._abs(a)
            if p in self.files:
                out.append(a + "\n")
                continue
            if p not in self.dirs:
                raise _Exit(2, f"ls: cannot access '{a}': No such file or directory\n")
            prefix = p.rstrip("/") + "/"
            names = {
                x[len(prefix) :].split("/", 1)[0] for x in (*self.files, *self.dirs) if x.startswith(prefix)
            }
            out.append("".join(f"{n}\n" for n in sorted(names) if n))
        return 0

    def _prog_grep(self, args: list[str], out: list[str]) -> int:
        numbered = "-n" in args
        rest = [a for a in args if not a.startswith("-")]
        pattern, paths = rest[0], rest[1:]
        hits = 0
        for path in paths:
            for n, line in enumerate(self._read(path, "grep").splitlines(), 1):
                if pattern in line:
                    hits += 1
                    where = f"{path}:" if len(paths) > 1 else ""
                    out.append(f"{where}{n}:{line}\n" if numbered else f"{where}{line}\n")
        return 0 if hits else 1

    def _prog_command(self, args: list[str], out: list[str]) -> int:
        if args[:1] != ["-v"] or len(args) != 2:
            raise _Exit(2, "command: only `command -v NAME` is supported\n")
        name = args[1]
        if name in ("python3", self.PYTHON):
            out.append(self.PYTHON + "\n")
            return 0
        if hasattr(self, f"_prog_{name}"):
            out.append(name + "\n")
            return 0
        return 1

    def _prog_git(self, args: list[str], out: list[str]) -> int:
        repo = self.cwd
        if args[:1] == ["-C"]:
            repo, args = self._abs(args[1]), args[2:]
        if repo != self.repo and not repo.startswith(self.repo + "/"):
            raise _Exit(128, "fatal: not a git repository (or any of the parent directories): .git\n")
        if args == ["rev-parse", "HEAD"]:
            out.append(self.head + "\n")
            return 0
        if args[:1] == ["diff"]:
            out.append(self._git_diff(self.repo))
            return 0
        raise _Exit(1, f"git: '{' '.join(args)}' is not supported by the in-memory sandbox\n")

    def _python(self, args: list[str], out: list[str]) -> int:

        flags = [a for a in args if a in ("-I", "-S")]
        rest = args[len(flags) :]
        if rest[:1] == ["-c"]:  # a snippet: the host interpreter runs it, isolated, without this file system
            res = subprocess.run([sys.executable, "-I", "-S", "-c", rest[1]], capture_output=True, text=True,
                                 cwd="/", timeout=30)  # fmt: skip
            out.append(res.stdout + res.stderr)
            return res.returncode
        if not rest or self._abs(rest[0]) not in self.files:
            raise _Exit(
                2, f"python3: can't open file '{rest[0] if rest else ''}': No such file or directory\n"
            )
        if self.files[self._abs(rest[0])] != script_source().decode():
            raise _Exit(
                126, "python3: the in-memory sandbox runs no Python files but the srl-swe tool script\n"
            )
        tool, kv = rest[1], rest[2:]
        arguments = dict(zip(kv[::2], kv[1::2], strict=True))
        if tool == "_configure":
            self.tool_settings = arguments
            return 0
        if tool == "submit":
            out.append(self._git_diff(self.tool_settings.get("repo", self.repo).rstrip("/")))
            return 0
        raise _Exit(2, f"Error: the tool {tool!r} is not implemented by the in-memory sandbox\n")
