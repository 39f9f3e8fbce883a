"""`SrlSweError`: the one base of every exception srl-swe raises, so a caller can catch "any srl-swe error".

It lives in the lowest layer (`trajectories`; `envs` imports from it too) and is re-exported by each
package (`from harness import SrlSweError` works as well). Every project exception also keeps its builtin
base (``class RecipeError(SrlSweError, ValueError)``), so existing ``except ValueError`` keeps working.

The one exception class that does not derive from it is `harness/tools/sandbox_tools.py`'s ``ToolError``:
that script runs inside the sandbox with the standard library only, and its errors never leave the script
(they become its exit status 1 and the observation text).
"""

from __future__ import annotations


class SrlSweError(Exception):
    """Base of every exception srl-swe defines."""
