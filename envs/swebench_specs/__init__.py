"""SWE-bench's own per-repository/version specs, as data, and how a row becomes TaskSpec fields.

``python.json`` is generated from SWE-bench's spec tables by ``python -m envs.swebench_specs.generate``
(see there; never edit it by hand). For a SWE-bench-family row whose ``repo`` + ``version`` the tables
know, :func:`spec_fields` gives the environment (Python version, packages, pre-install and install
commands), the test command with SWE-bench's test directives, and the log parser's name. Anything the
row (or a task file) sets itself wins over the table: ``env`` fields one by one, ``test_cmd`` and
``log_parser`` as a whole.

How SWE-bench's conda recipes map onto ours (a venv of the image's Python, offline from a host
wheelhouse):

- ``python`` -> ``env.python`` (the base image of that Python is used; see ``harness.base_image``);
- ``packages``: a conda package list -> pip requirements (``name=1.2`` pins become ``name==1.2``);
  ``requirements.txt`` -> ``pip install -r`` of the first of SWE-bench's requirement paths the repo has,
  at install time; ``environment.yml`` -> nothing (conda only; the ``pip_packages`` carry the rest);
- ``pip_packages`` -> ``env.pip_packages``; ``pytest`` is added when the test command is pytest;
- ``pre_install``: ``apt-get install`` lines -> ``env.system_packages``; commands that configure the
  system locale are replaced by the ``locales`` package (the env image then generates ``en_US.UTF-8``);
  the rest (``sed`` on setup.py, ...) run before ``install`` in /testbed;
- ``eval_commands``: exports run before the test command; locale setup is done at build time instead;
- ``test_cmd`` + the test directives of the test patch (Django: dotted module names) -> ``test_cmd``.
"""

from __future__ import annotations

import json
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

from envs.spec import DEFAULT_PIP_PACKAGES

DATA_FILE = Path(__file__).with_name("python.json")

_DIFF_RE = re.compile(r"^diff --git a/.* b/(.*)$", re.MULTILINE)
_APT_RE = re.compile(r"apt-get install(?: -y| --no-install-recommends| -q)*\s+(?P<pkgs>[^&|;]+)")
_ROOT_RE = re.compile(r"locale-gen|/etc/|apt-get")


@cache
def tables() -> dict[str, Any]:
    """The generated tables (``source``, ``non_test_exts``, ``repos``)."""
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))


def source() -> str:
    return tables()["source"]


def lookup(repo: str | None, version: Any) -> dict[str, Any] | None:
    """SWE-bench's spec for `repo` at `version` (a copy), or None when the tables do not know it."""
    if not repo or version is None:
        return None
    entry = tables()["repos"].get(repo)
    if entry is None:
        return None
    spec = entry["versions"].get(str(version))
    return json.loads(json.dumps(spec)) if spec is not None else None


def repo_parser(repo: str | None) -> str | None:
    entry = tables()["repos"].get(repo or "")
    return entry.get("log_parser") if entry else None


def test_directives(repo: str, test_patch: str) -> list[str]:
    """What SWE-bench appends to the test command: the test patch's files, without data files;
    for Django dotted module names relative to ``tests/``."""
    exts = tables()["non_test_exts"]
    files = [f for f in _DIFF_RE.findall(test_patch) if not any(f.endswith(e) for e in exts)]
    if repo == "django/django":
        out = []
        for f in files:
            f = f[: -len(".py")] if f.endswith(".py") else f
            f = f[len("tests/") :] if f.startswith("tests/") else f
            out.append(f.replace("/", "."))
        return out
    return files


def conda_to_pip(packages: str) -> list[str]:
    """A conda package list as pip requirements (``numpy=1.19`` -> ``numpy==1.19``; python dropped)."""
    out = []
    for pkg in shlex.split(packages):
        name = re.split(r"[<>=!~ ]", pkg, maxsplit=1)[0]
        if name.lower() == "python" or not name:
            continue
        out.append(re.sub(r"(?<![<>=!~])=(?!=)", "==", pkg, count=1))
    return out


def _system_packages(lines: list[str]) -> list[str]:
    pkgs: list[str] = []
    for line in lines:
        for m in _APT_RE.finditer(line):
            pkgs += [p for p in m["pkgs"].split() if not p.startswith("-")]
        if "locale-gen" in line or "locale.gen" in line:
            pkgs.append("locales")
    return sorted(set(pkgs))


def spec_fields(repo: str, version: Any, test_patch: str = "") -> dict[str, Any] | None:
    """TaskSpec fields (``env``, ``test_cmd``, ``log_parser``) from SWE-bench's tables, or None."""
    spec = lookup(repo, version)
    if spec is None:
        return None
    entry = tables()["repos"][repo]
    pre = list(spec.get("pre_install") or [])
    evals = list(spec.get("eval_commands") or [])
    test_cmd = spec.get("test_cmd") or ""
    if isinstance(test_cmd, list):
        test_cmd = " && ".join(test_cmd)
    pip: list[str] = []
    packages = spec.get("packages") or ""
    install: list[str] = [p for p in pre if not _ROOT_RE.search(p)]
    if packages == "requirements.txt":
        paths = entry.get("requirements_paths") or []
        if paths:
            quoted = " ".join(shlex.quote(p) for p in paths)
            install.append(f'for f in {quoted}; do if [ -f "$f" ]; then pip install -r "$f"; break; fi; done')
    elif packages and packages != "environment.yml":
        pip += conda_to_pip(packages)
    pip += list(spec.get("pip_packages") or [])
    if (
        repo != "pytest-dev/pytest"
        and re.match(r"^(\S+=\S+ )*pytest\b", test_cmd)
        and not any(re.match(r"pytest([<>=!~ ]|$)", p) for p in pip)
    ):
        pip.append("pytest")
    if entry.get("repo_install"):
        install.append(entry["repo_install"])
    if spec.get("install"):
        install.append(spec["install"])
    exports = [c for c in evals if not _ROOT_RE.search(c)]
    command = " ".join([test_cmd, *(shlex.quote(d) for d in test_directives(repo, test_patch))])
    env: dict[str, Any] = {
        "python": spec.get("python"),
        "system_packages": _system_packages(pre + evals),
        "pip_packages": list(dict.fromkeys(pip)),
        "install": install,
    }
    fields: dict[str, Any] = {
        "env": env,
        "test_cmd": "; ".join([*exports, command]) if exports else command,
    }
    parser = entry.get("log_parser")
    if parser:
        fields["log_parser"] = parser
    return fields


_START_RE = re.compile(r"^: '>>>>> Start Test Output'\s*$|^echo ['\"]?>>>>> Start Test Output", re.MULTILINE)
_END_RE = re.compile(r"^: '>>>>> End Test Output'|^echo ['\"]?>>>>> End Test Output", re.MULTILINE)


def eval_script_test_command(script: Any) -> str | None:
    """The test command of a published SWE-bench eval script (the newer rows' ``eval_script``): what
    runs between its ``>>>>> Start Test Output`` and ``>>>>> End Test Output`` markers, after the
    ``export`` lines it makes first. None when the script has no such markers."""
    if not isinstance(script, str):
        return None
    start, end = _START_RE.search(script), _END_RE.search(script)
    if not start or not end or end.start() <= start.end():
        return None
    command = script[start.end() : end.start()].strip()
    if not command:
        return None
    exports = [ln.strip() for ln in script[: start.start()].splitlines() if re.match(r"^\s*export \w+=", ln)]
    exports = [e for e in dict.fromkeys(exports) if not _ROOT_RE.search(e)]
    return "; ".join([*exports, command])


def apply_spec(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (TaskSpec fields of one row, ``version`` in its metadata) with the benchmark's own spec
    filled in where the row does not set it: from the row's ``eval_script`` when it has one (its test
    command; its test patch when the row has none; the system packages and pip requirements its steps
    need, see `envs.swebench_eval`), then the tables' fields; unchanged when neither applies.

    Raises `envs.swebench_eval.EvalScriptError` (naming the row and the line) for an ``eval_script``
    that cannot run here, or whose test patch is not the row's."""
    from envs.swebench_eval import EvalScriptError, parse_eval_script

    meta = data.get("metadata") or {}
    plan = None
    if meta.get("eval_script") is not None:
        plan = parse_eval_script(meta["eval_script"], str(data.get("instance_id") or "?"))
        script_cmd = "; ".join(
            [*dict.fromkeys(e for e in plan.exports if not _ROOT_RE.search(e)), plan.test_command]
        )
        if data.get("test_cmd") is None:
            data = {**data, "test_cmd": script_cmd}
        if plan.test_patch is not None:
            row_patch = data.get("test_patch") or ""
            if not row_patch.strip():
                data = {**data, "test_patch": plan.test_patch}
            elif row_patch.rstrip("\n") != plan.test_patch.rstrip("\n"):
                step = next(s for s in plan.pre if s.kind == "test_patch")
                raise EvalScriptError(
                    f"eval_script of {plan.instance_id}, line {step.line}: its test patch is not the row's "
                    "test_patch (expected the same diff)"
                )
    version = meta.get("version", data.get("version"))
    fields = spec_fields(data.get("repo", ""), version, data.get("test_patch") or "")
    if fields is None and plan is None:
        return data
    out = dict(data)
    env = dict(fields["env"]) if fields else {}
    if plan is not None:  # what the script's steps need (its system setup, what it pip-installs)
        if plan.system_packages:
            env["system_packages"] = sorted({*env.get("system_packages", []), *plan.system_packages})
        if plan.pip_requirements:
            pip = env.get("pip_packages", list(DEFAULT_PIP_PACKAGES))
            env["pip_packages"] = list(dict.fromkeys([*pip, *plan.pip_requirements]))
    row_env = out.get("env")
    if isinstance(row_env, dict):
        env.update(row_env)
    elif row_env is not None:  # an EnvSpec (plug-ins): its explicitly set fields win
        env.update(row_env.model_dump(exclude_unset=True))
    if env:
        out["env"] = env
    if fields is None:
        return out
    for key in ("test_cmd", "log_parser"):
        if out.get(key) is None and key in fields:
            out[key] = fields[key]
    out["metadata"] = {**meta, "spec": f"{source()} {data.get('repo')} {version}"}
    return out
