"""Tools that run inside the sandbox (`sandbox_tools.py`, stdlib only) and their host-side runtime."""

from harness.tools.runtime import (
    SCRIPT_TOOLS,
    SUPPORTED_TOOLS,
    Observation,
    ToolRuntime,
    ToolRuntimeError,
    script_source,
)

__all__ = [
    "SCRIPT_TOOLS",
    "SUPPORTED_TOOLS",
    "Observation",
    "ToolRuntime",
    "ToolRuntimeError",
    "script_source",
]
