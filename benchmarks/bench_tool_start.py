"""Start-up cost of the in-sandbox tool script (`harness/tools/sandbox_tools.py`), per call.

Every file-tool call the agent makes starts the script once (``python3 -I -S tools.py <tool> ...``), so
its start-up is the floor of a tool call. Measured on the host interpreter, interleaved in the same run:

- baseline: a bare interpreter, ``python3 -I -S -c pass``;
- the script on three cheap calls: ``find_file`` in a small directory, ``search_file`` with no file open
  (an error observation), ``create`` of a new file;
- with ``--against REV``: the same calls through the script as it was at git revision REV (to check that
  a change of the script did not make every call slower).

    .venv/bin/python benchmarks/bench_tool_start.py [--repeat 60] [--against HEAD] [--md out.md]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._common import machine, median  # noqa: E402

SCRIPT = ROOT / "harness" / "tools" / "sandbox_tools.py"
CALLS = (
    ("find_file", ["file_name", "*.py"]),
    ("search_file", ["search_term", "x"]),
    ("create", ["filename", "new_{n}.py"]),
)


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=60, help="Runs of each call (interleaved).")
    ap.add_argument("--against", default=None, help="Also time the script as it was at this git revision.")
    ap.add_argument("--md", type=Path, default=None, help="Append the result as Markdown to this file.")
    args = ap.parse_args()

    scripts = {"now": SCRIPT}
    with tempfile.TemporaryDirectory(prefix="srl-bench-tools-") as tmp:
        work = Path(tmp) / "repo"
        (work / "pkg").mkdir(parents=True)
        for i in range(20):
            (work / "pkg" / f"m{i}.py").write_text(f"x = {i}\n")
        if args.against:
            old = Path(tmp) / "old_tools.py"
            rel = SCRIPT.relative_to(ROOT).as_posix()
            text = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{args.against}:{rel}"], capture_output=True, text=True
            )
            if text.returncode != 0:
                sys.exit(f"--against {args.against}: git show failed: {text.stderr.strip()}")
            old.write_text(text.stdout)
            scripts[args.against] = old
        env = {**os.environ, "SRL_TOOLS_STATE": str(Path(tmp) / "state")}
        times: dict[str, list[float]] = {"bare": []} | {k: [] for k in scripts}
        for n in range(args.repeat):
            times["bare"].append(_timed([sys.executable, "-I", "-S", "-c", "pass"], work, env))
            for label, script in scripts.items():
                for tool, pairs in CALLS:
                    argv = [
                        sys.executable,
                        "-I",
                        "-S",
                        str(script),
                        tool,
                        *(p.format(n=f"{label}{n}") for p in pairs),
                    ]
                    times[label].append(_timed(argv, work, env))
    bare = median(times["bare"])
    lines = [
        "### In-sandbox tool script start-up (`benchmarks/bench_tool_start.py`)",
        "",
        f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f}; {args.repeat} runs of each call, "
        "interleaved.",
        "",
        "| what | median per call | ratio to a bare interpreter |",
        "| --- | --- | --- |",
        f"| bare `python3 -I -S -c pass` | {bare * 1000:.1f} ms | 1.00 |",
    ]
    for label in scripts:
        t = median(times[label])
        lines.append(
            f"| script ({label}): find_file, search_file, create | {t * 1000:.1f} ms | {t / bare:.2f} |"
        )
    if args.against:
        ratio = median(times["now"]) / median(times[args.against])
        lines += ["", f"Script now / script at {args.against}: {ratio:.3f}."]
    text = "\n".join(lines)
    print(text)
    if args.md:
        with args.md.open("a") as f:
            f.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
