"""Sandboxes: a Docker container with hard limits (lifecycle) and a persistent shell in it (execution).

    with Sandbox(SandboxConfig(image="srl-base:bookworm", memory="512m", timeout=30)) as sb:
        sb.exec("cd /tmp; export X=1")
        r = sb.exec("echo $X; pwd")      # -> ExecResult(exit_code=0, output="1\\n/tmp\\n", ...)

The package, one concept per module:

- `results`: `ExecResult`, the limits a command can hit, bounded output, `SandboxError`;
- `config`: `SandboxConfig` (and `SandboxConfig.for_task`, the sandbox of one task);
- `protocol`: the shell wire protocol (`ShellSession`); its bash programs are the `*.sh` files here;
- `netns`: the pool of idle offline network namespaces that sandboxes without network join;
- `container`: `Sandbox` (lifecycle, `exec` / `run` / `run_once`) and `gc`; `files`: its file helpers.
"""

from harness.sandbox.config import SandboxConfig
from harness.sandbox.container import Sandbox, gc
from harness.sandbox.netns import close_netns_pool, prewarm_netns
from harness.sandbox.protocol import ShellSession
from harness.sandbox.results import ExecResult, Limit, SandboxError

__all__ = [
    "ExecResult",
    "Limit",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "ShellSession",
    "close_netns_pool",
    "gc",
    "prewarm_netns",
]
