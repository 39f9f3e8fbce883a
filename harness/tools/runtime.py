"""Host side of the sandbox tools: route each `ToolCall` to where it runs and return an `Observation`.

- ``bash`` runs in the sandbox's persistent shell session (`Sandbox.exec`).
- Every other tool of the one list (`trajectories.tools.TOOL_SPECS`): the file tools
  (``str_replace_editor``, SWE-agent's ``open`` / ``goto`` / ``scroll_up`` / ``scroll_down`` / ``create`` /
  ``edit`` / ``find_file`` / ``search_dir`` / ``search_file``) and ``submit`` run the in-sandbox script
  `sandbox_tools.py`, copied once to ``/opt/srl-tools/tools.py`` and started from the same shell session
  (one round trip per call, no extra ``docker exec``), so the agent's working directory applies. Typed
  function-call arguments and the legacy raw ``args`` string are both passed through as JSON; the script
  understands both.
- Any other tool is reported as ``unsupported``, never faked.

    with Sandbox(SandboxConfig(image=tag, workdir="/testbed")) as sb:
        rt = ToolRuntime(sb)
        obs = rt.execute(ToolCall(name="open", arguments={"path": "setup.py"}))
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import time
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from trajectories.errors import SrlSweError
from trajectories.schema import ToolCall
from trajectories.tools import TOOL_SPECS

SCRIPT_PATH = Path(__file__).with_name("sandbox_tools.py")
REMOTE_DIR = "/opt/srl-tools"
REMOTE_SCRIPT = f"{REMOTE_DIR}/tools.py"
REMOTE_STATE = "/tmp/.srl_tools_state"

# Derived from the one tool list (`trajectories.tools.TOOL_SPECS`): bash runs in the agent's shell,
# every other tool in the script (as its function ``tool_<name>``).
SHELL_TOOLS: frozenset[str] = frozenset({"bash"})
SUPPORTED_TOOLS: frozenset[str] = frozenset(TOOL_SPECS)
SCRIPT_TOOLS: frozenset[str] = SUPPORTED_TOOLS - SHELL_TOOLS

# Interpreters tried for the script, in order; the first with Python >= 3.9 wins. The system Python
# comes first so the repository's own environment (possibly an old Python) does not matter.
PYTHON_CANDIDATES = (
    "/usr/bin/python3",
    "/usr/local/bin/python3",
    "/opt/miniconda3/bin/python3",
    "/opt/conda/bin/python3",
    "python3",
)
INLINE_ARGS_LIMIT = 64_000  # bigger JSON arguments travel as a file (argv strings stop at 128 KiB)
_TIMING_RE = re.compile(r"\n?__SRL_T_([0-9a-f]{8}) (\S*) (\S*)\n?\Z")


class ToolRuntimeError(SrlSweError, RuntimeError):
    """The tools could not be installed or run in the sandbox."""


class Observation(BaseModel):
    """What one tool call answered."""

    model_config = ConfigDict(extra="forbid")

    text: str
    exit_code: int
    duration: float  # host wall time of the call, seconds
    submitted: bool = False
    patch: str | None = None
    unsupported: bool = False
    timed_out: bool = False
    tool: str = ""
    command_time: float | None = None  # in-sandbox run time of the command itself (with `timing=True`)


class _ExecResult(Protocol):
    exit_code: int
    output: str
    timed_out: bool


class SandboxLike(Protocol):
    """What the runtime needs of `harness.sandbox.Sandbox`."""

    def exec(self, command: str, timeout: float | None = None) -> _ExecResult: ...

    def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None: ...


def script_source() -> bytes:
    """The in-sandbox tool script, as copied into the container."""
    return SCRIPT_PATH.read_bytes()


class ToolRuntime:
    """Executes tool calls in one sandbox. Installs the tool script on first use.

    `style` picks the SWE-agent window tools' output: ``v1`` (SWE-agent 1.x) or ``v0`` (0.x, the old
    ``.traj`` layout). `timing=True` wraps every command so the sandbox reports the command's own run time
    (`Observation.command_time`); the benchmark uses it to separate harness overhead from work.
    """

    def __init__(
        self,
        sandbox: SandboxLike,
        *,
        repo: str = "/testbed",
        window: int = 100,
        overlap: int = 2,
        timeout: float | None = None,
        timing: bool = False,
        style: str = "v1",
        tools_dir: str = REMOTE_DIR,
        state_path: str = REMOTE_STATE,
    ) -> None:
        self.sandbox = sandbox
        self.remote_script = f"{tools_dir.rstrip('/')}/tools.py"
        self.state_path = state_path
        self.repo = repo
        self.window = window
        self.overlap = overlap
        self.timeout = timeout
        self.timing = timing
        self.style = style
        self.python: str | None = None
        self.base_commit: str | None = None

    # -- installation ------------------------------------------------------------------------
    @property
    def installed(self) -> bool:
        return self.python is not None

    def install(self) -> None:
        """Copy the script in, pick an interpreter, record the repo's base commit, reset the state."""
        self.sandbox.write_file(self.remote_script, script_source(), mode=0o755)
        probe = "; ".join(
            f"if {shlex.quote(p)} -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; "
            f'then echo "__SRL_PY=$(command -v {shlex.quote(p)})"; break; fi'
            for p in PYTHON_CANDIDATES
        )
        probe = f'for __srl_once in 1; do {probe}; done; echo "__SRL_BASE=$(git -C {shlex.quote(self.repo)} rev-parse HEAD 2>/dev/null)"'
        res = self.sandbox.exec(probe, timeout=60)
        found = dict(
            line.split("=", 1)
            for line in res.output.splitlines()
            if line.startswith(("__SRL_PY=", "__SRL_BASE="))
        )
        python = found.get("__SRL_PY", "").strip()
        if not python:
            raise ToolRuntimeError(
                "no Python >= 3.9 in the sandbox to run the tool script (tried: "
                + ", ".join(PYTHON_CANDIDATES)
                + ")"
            )
        self.python = python
        self.base_commit = found.get("__SRL_BASE", "").strip() or None
        history = str(Path(self.state_path).parent / ".srl_tools_history")
        settings = {
            "repo": self.repo,
            "window": str(self.window),
            "overlap": str(self.overlap),
            "style": self.style,
        }
        if self.base_commit:
            settings["base"] = self.base_commit
        res = self.sandbox.exec(
            f"rm -rf {shlex.quote(history)} {shlex.quote(self.state_path)}; "
            + self._script_command("_configure", settings),
            timeout=60,
        )
        if res.exit_code != 0:
            self.python = None
            raise ToolRuntimeError(f"the tool script does not run in the sandbox: {res.output[-1000:]}")

    # -- commands ----------------------------------------------------------------------------
    def _script_command(self, tool: str, arguments: dict[str, str]) -> str:
        """``python3 -I -S tools.py <tool> <name> <value>...``; big or NUL-holding arguments go as a file."""
        values = {k: str(v) for k, v in arguments.items()}
        size = sum(len(k) + len(v) for k, v in values.items())
        if size > INLINE_ARGS_LIMIT or any("\0" in v for v in values.values()):
            path = f"/tmp/.srl_args_{secrets.token_hex(6)}.json"
            self.sandbox.write_file(path, json.dumps(values, ensure_ascii=True).encode(), mode=0o644)
            argv = [shlex.quote("@" + path)]
        else:
            argv = [shlex.quote(x) for kv in values.items() for x in kv]
        env = "" if self.state_path == REMOTE_STATE else f"SRL_TOOLS_STATE={shlex.quote(self.state_path)} "
        python = shlex.quote(self.python or "python3")
        return " ".join([f"{env}{python} -I -S {shlex.quote(self.remote_script)} {tool}", *argv])

    def command_for(self, call: ToolCall) -> str | None:
        """The shell command that runs `call` in the session, or None when the tool is unsupported."""
        if call.name in SHELL_TOOLS:
            return call.arguments.get("command", "")
        if call.name in SCRIPT_TOOLS:
            if not self.installed:
                self.install()
            return self._script_command(call.name, dict(call.arguments))
        return None

    def _timed(self, command: str) -> tuple[str, str]:
        tag = secrets.token_hex(4)
        wrapped = (
            "__srl_t0=$EPOCHREALTIME\n"
            f"{command}\n"
            "__srl_rc=$?; __srl_t1=$EPOCHREALTIME; "
            f'printf \'\\n__SRL_T_{tag} %s %s\\n\' "$__srl_t0" "$__srl_t1"; (exit $__srl_rc)'
        )
        return wrapped, tag

    def execute(self, call: ToolCall, timeout: float | None = None) -> Observation:
        """Run one tool call and return what it answered."""
        start = time.perf_counter()
        command = self.command_for(call)
        if command is None:
            return Observation(
                text=f"Tool {call.name!r} is not implemented by srl-swe's sandbox tools; the call was not run.",
                exit_code=-1,
                duration=time.perf_counter() - start,
                unsupported=True,
                tool=call.name,
            )
        tag = None
        if self.timing:
            command, tag = self._timed(command)
        res = self.sandbox.exec(command, timeout=timeout or self.timeout)
        text = res.output
        command_time = None
        if tag is not None:
            m = _TIMING_RE.search(text)
            if m and m.group(1) == tag:
                text = text[: m.start()]
                try:
                    command_time = float(m.group(3)) - float(m.group(2))
                except ValueError:
                    command_time = None
        submitted = call.name == "submit" and res.exit_code == 0
        return Observation(
            text=text,
            exit_code=res.exit_code,
            duration=time.perf_counter() - start,
            submitted=submitted,
            patch=text if submitted else None,
            timed_out=bool(getattr(res, "timed_out", False)),
            tool=call.name,
            command_time=command_time,
        )
