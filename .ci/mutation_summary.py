"""Survivors per module after `mutmut run` (`make mutation`): a table, then every surviving mutant.

Reads `mutmut results --all true` (lines ``    harness.log_parsers.x_parse_junit__mutmut_3: survived``).
Exit status 1 when mutmut has no results (it did not run here).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

_LINE = re.compile(r"^\s*(?P<name>\S+): (?P<status>.+?)\s*$")
_MODULE = re.compile(r"^(?P<module>.+?)\.x[_ǁ]")  # functions: x_name, methods: xǁClassǁname


def main() -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run([str(mutmut), "results", "--all", "true"], capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stdout + out.stderr, file=sys.stderr)
        print("ERROR: `mutmut results` failed; run `make mutation` first", file=sys.stderr)
        return 1
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    for line in out.stdout.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        mod = _MODULE.match(m["name"])
        by_module[mod["module"] if mod else "?"][m["status"]] += 1
        if m["status"] == "survived":
            survivors.append(m["name"])
    if not by_module:
        print("ERROR: no mutmut results found under mutants/; run `make mutation` first", file=sys.stderr)
        return 1
    print(f"{'module':32} {'mutants':>8} {'killed':>7} {'survived':>9} {'other':>6} {'survivor rate':>14}")
    total: Counter[str] = Counter()
    for module in sorted(by_module):
        c = by_module[module]
        total.update(c)
        _row(module, c)
    _row("all", total)
    print("\nsurviving mutants (`mutmut show NAME` prints the diff):")
    for name in survivors:
        print(f"  {name}")
    return 0


def _row(module: str, c: Counter[str]) -> None:
    n = sum(c.values())
    other = n - c["killed"] - c["survived"]
    checked = c["killed"] + c["survived"]
    rate = f"{c['survived'] / checked:.1%}" if checked else "-"
    print(f"{module:32} {n:>8} {c['killed']:>7} {c['survived']:>9} {other:>6} {rate:>14}")


if __name__ == "__main__":
    sys.exit(main())
