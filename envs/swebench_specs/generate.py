"""Generate ``python.json`` from SWE-bench's own spec tables (not a hand-typed copy).

``swebench`` 5.x no longer ships the per-repository/version tables; 4.1.0 is the last release that has
them. This script downloads that wheel with the host's pip (``pip download --no-deps``) into a temporary
folder, reads the tables out of it without installing anything into this environment, and writes the
Python repositories' specs as JSON::

    python -m envs.swebench_specs.generate                    # swebench==4.1.0 -> envs/swebench_specs/python.json
    python -m envs.swebench_specs.generate --version 4.1.0 --out /tmp/specs.json

What is read: ``swebench/harness/constants/python.py`` (``MAP_REPO_VERSION_TO_SPECS_PY``,
``MAP_REPO_TO_REQS_PATHS``, ``MAP_REPO_TO_ENV_YML_PATHS``, ``MAP_REPO_TO_INSTALL_PY``; a module of plain
literals, comprehensions and dict updates, executed with no builtins beyond ``range``/``int``), the
``NON_TEST_EXTS`` list of ``constants/__init__.py`` and the repository -> parser map of
``log_parsers/python.py`` (read with ``ast``: function names only, nothing executed).
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

DEFAULT_VERSION = "4.1.0"
DEFAULT_OUT = Path(__file__).with_name("python.json")
_PREFIX = "swebench/harness/"


def download_wheel(version: str, dest: Path) -> Path:
    """``swebench==version`` as a wheel in `dest`, via the host's pip configuration."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    proc = subprocess.run([*cmd, "--dest", str(dest), f"swebench=={version}"], capture_output=True, text=True)
    wheels = sorted(dest.glob("swebench-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise SystemExit(f"pip download swebench=={version} failed:\n{proc.stderr[-2000:]}")
    return wheels[0]


def _literal_assign(source: str, name: str) -> Any:
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"{name} not found")


def parser_map(source: str) -> dict[str, str]:
    """``{repo: parser name}`` from ``log_parsers/python.py``: ``parse_log_astropy = parse_log_pytest_v2``
    style aliases resolved, the ``parse_log_`` prefix dropped."""
    aliases: dict[str, str] = {}
    table: dict[str, str] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = getattr(node.targets[0], "id", None)
        if isinstance(node.value, ast.Name) and target:
            aliases[target] = node.value.id
        elif target == "MAP_REPO_TO_PARSER_PY" and isinstance(node.value, ast.Dict):
            for k, v in zip(node.value.keys, node.value.values, strict=True):
                if isinstance(k, ast.Constant) and isinstance(v, ast.Name):
                    table[k.value] = v.id
    out = {}
    for repo, fn in table.items():
        while fn in aliases:
            fn = aliases[fn]
        out[repo] = fn.removeprefix("parse_log_")
    return out


def read_tables(wheel: Path) -> dict[str, Any]:
    with zipfile.ZipFile(wheel) as zf:
        consts = zf.read(_PREFIX + "constants/python.py").decode()
        init = zf.read(_PREFIX + "constants/__init__.py").decode()
        parsers = zf.read(_PREFIX + "log_parsers/python.py").decode()
    namespace: dict[str, Any] = {"__builtins__": {"range": range, "int": int, "dict": dict, "list": list}}
    exec(compile(consts, "swebench/harness/constants/python.py", "exec"), namespace)  # noqa: S102
    specs = namespace["MAP_REPO_VERSION_TO_SPECS_PY"]
    reqs_paths = namespace.get("MAP_REPO_TO_REQS_PATHS", {})
    yml_paths = namespace.get("MAP_REPO_TO_ENV_YML_PATHS", {})
    install_repo = namespace.get("MAP_REPO_TO_INSTALL_PY", {})
    parsers_by_repo = parser_map(parsers)
    repos = {}
    for repo in sorted(specs):
        repos[repo] = {
            "log_parser": parsers_by_repo.get(repo),
            "requirements_paths": list(reqs_paths.get(repo, [])),
            "env_yml_paths": list(yml_paths.get(repo, [])),
            "repo_install": install_repo.get(repo),
            "versions": {v: specs[repo][v] for v in sorted(specs[repo], key=_version_key)},
        }
    return {"non_test_exts": _literal_assign(init, "NON_TEST_EXTS"), "repos": repos}


def _version_key(v: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in v.split("."))


def generate(version: str = DEFAULT_VERSION, out: Path = DEFAULT_OUT) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="srl-swebench-") as tmp:
        wheel = download_wheel(version, Path(tmp))
        tables = read_tables(wheel)
    data = {
        "source": f"swebench=={version}",
        "generated_by": "python -m envs.swebench_specs.generate",
        **tables,
    }
    out.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return data


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default=DEFAULT_VERSION, help="swebench release with the spec tables")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    args = ap.parse_args(argv)
    data = generate(args.version, args.out)
    n = sum(len(r["versions"]) for r in data["repos"].values())
    print(f"{args.out}: {len(data['repos'])} repositories, {n} repo/version specs from {data['source']}")


if __name__ == "__main__":
    main()
