"""`TaskSpec`: what a repo task is, as pure data.

A task is a real git repository at a base commit, an environment recipe (Python packages, system
packages, install commands), a test command with the name of the log parser that reads its output,
the test patch and the gold patch, and the tests that must go from failing to passing
(``FAIL_TO_PASS``) or keep passing (``PASS_TO_PASS``). Field names follow the SWE-bench instance
schema where one exists (``patch`` is the gold patch), so SWE-bench records load almost unchanged.

Like SWE-bench's ``TestSpec`` the spec derives everything that is run from it (the install and eval
scripts; evaluation runs through `harness.evaluate.run_instance`) and the content keys of its images: two specs with the same recipe have the same keys, any
change to a recipe changes its key. Nothing here touches Docker, git or the network.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from unidiff import PatchSet

#: Version of the image recipes below; bump it when the generated scripts change meaning.
RECIPE_VERSION = 1

#: Where the repository lives inside instance images and sandboxes.
TESTBED = "/testbed"
#: The virtual environment created in env images (on PATH in every derived image).
VENV = "/opt/venv"
#: Host-side wheelhouse copied into images; pip reads it with --no-index --find-links.
WHEELS_DIR = "/opt/srl/wheels"

#: Default test packages of a task without environment fields.
DEFAULT_PIP_PACKAGES = ("pytest",)
#: Default install commands (run in /testbed, offline, from the wheelhouse).
DEFAULT_INSTALL = ("pip install -e .",)

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_SHA_RE = re.compile(r"^[0-9a-fA-F]{7,40}$")
_TEST_PATH_RE = re.compile(r"(^|/)(tests?|testing)/|(^|/)test_[^/]*\.py$|_tests?\.py$|(^|/)conftest\.py$")


def is_test_path(path: str) -> bool:
    """True for files the SWE-bench convention counts as tests (under tests/, test_*.py, *_test.py)."""
    return bool(_TEST_PATH_RE.search(path))


def patch_files(patch: str) -> list[str]:
    """Paths a unified diff touches (target path; source path for deletions), in order."""
    if not patch.strip():
        return []
    files: list[str] = []
    for pf in PatchSet(patch):
        path = pf.target_file if pf.target_file != "/dev/null" else pf.source_file
        path = path[2:] if path.startswith(("a/", "b/")) else path
        if path not in files:
            files.append(path)
    return files


def _strict() -> ConfigDict:
    return ConfigDict(extra="forbid", frozen=False, validate_assignment=True)


class EnvSpec(BaseModel):
    """How to build the task's environment. Empty fields fall back to the default Python env."""

    model_config = _strict()

    python: str | None = Field(
        None,
        description="Python major.minor the tests need; the base image is the Debian release that ships it "
        "(3.9 bullseye, 3.11 bookworm, 3.13 trixie) unless --base-image names one",
    )
    system_packages: list[str] = Field(default_factory=list, description="Debian packages (apt-get)")
    pip_packages: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PIP_PACKAGES),
        description="pip requirements installed into the venv from a host wheelhouse",
    )
    install: list[str] = Field(
        default_factory=lambda: list(DEFAULT_INSTALL),
        description="shell commands run in /testbed at image build time (offline, wheelhouse only)",
    )

    @field_validator("python")
    @classmethod
    def _python_version(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"3\.\d+", str(v)):
            raise ValueError(f"expected a Python version like '3.11', got {v!r}")
        return None if v is None else str(v)


class Limits(BaseModel):
    """Resource limits and timeouts of the task's sandboxes."""

    model_config = _strict()

    cpus: float = Field(1.0, gt=0)
    memory: str = Field("2g", pattern=r"^\d+[kmgKMG]?$")
    pids: int = Field(512, gt=0)
    test_timeout: int = Field(900, gt=0, description="seconds for one run of the test command")
    build_timeout: int = Field(1800, gt=0, description="seconds for building one image")


def _as_test_list(value: Any) -> Any:
    """FAIL_TO_PASS / PASS_TO_PASS arrive as lists or as JSON-encoded strings (HF SWE-bench)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"expected a list of test names or a JSON-encoded list, got {value[:60]!r}"
            ) from exc
        return decoded
    return value


class TaskSpec(BaseModel):
    """One repo task. See the module docstring; fields follow SWE-bench names where they exist."""

    model_config = _strict()

    instance_id: str = Field(description="unique id, e.g. owner__name-1234")
    repo: str = Field(description="owner/name, or a local path, a git bundle or a URL")
    repo_source: str | None = Field(
        None, description="where to get the repo (path, .bundle, URL); default: derived from repo"
    )
    base_commit: str = Field(description="full hash the agent starts from")
    problem_statement: str = ""
    problem_statement_source: str = Field("issue", description="issue | commit_message | written")
    hints: str | None = None
    env: EnvSpec = Field(default_factory=EnvSpec)
    test_cmd: str | None = Field(
        None,
        description="test command run in /testbed; default: pytest -rA on the test files named in the tests",
    )
    log_parser: str = Field("pytest", description="name of the log parser that grades the test output")
    test_patch: str = ""
    patch: str = Field("", description="gold patch")
    FAIL_TO_PASS: list[str] = Field(default_factory=list)
    PASS_TO_PASS: list[str] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="provenance; not part of any image key"
    )
    recipe: dict[str, Any] | None = Field(
        None,
        description="how repo_source, base_commit, patch and test_patch are derived from the package index "
        "(envs.recipes; kinds: release, synth); a task file with a recipe stores no patches",
    )

    @field_validator("instance_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise ValueError(f"expected letters, digits, '_', '.', '-' (no spaces or slashes), got {v!r}")
        return v

    @field_validator("base_commit")
    @classmethod
    def _sha(cls, v: str) -> str:
        if not _SHA_RE.match(v):
            raise ValueError(f"expected a commit hash (7-40 hex digits), got {v!r}")
        return v.lower()

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _tests(cls, v: Any) -> Any:
        return _as_test_list(v)

    @field_validator("test_patch", "patch")
    @classmethod
    def _diff(cls, v: str) -> str:
        if v.strip():
            try:
                files = PatchSet(v)
            except Exception as exc:  # unidiff raises UnidiffParseError and friends
                raise ValueError(f"expected a unified diff: {exc}") from exc
            if not len(files):
                raise ValueError("expected a unified diff (---/+++ headers and hunks), found no file diffs")
            if not v.endswith("\n"):
                v += "\n"
        return v

    @model_validator(mode="after")
    def _disjoint(self) -> TaskSpec:
        both = set(self.FAIL_TO_PASS) & set(self.PASS_TO_PASS)
        if both:
            raise ValueError(f"tests listed in both FAIL_TO_PASS and PASS_TO_PASS: {sorted(both)[:3]}")
        return self

    # ----------------------------------------------------------------------------- derived data

    @property
    def repo_slug(self) -> str | None:
        """``owner/name`` when `repo` names a GitHub-style repository, else None."""
        return (
            self.repo
            if re.fullmatch(r"[\w.\-]+/[\w.\-]+", self.repo) and not self.repo.startswith(".")
            else None
        )

    @property
    def test_files(self) -> list[str]:
        """Files the test patch touches."""
        return patch_files(self.test_patch)

    @property
    def gold_files(self) -> list[str]:
        return patch_files(self.patch)

    def tests_to_run(self) -> list[str]:
        """Test files to run: those named in FAIL_TO_PASS/PASS_TO_PASS, else the test patch's files."""
        files: list[str] = []
        for name in [*self.FAIL_TO_PASS, *self.PASS_TO_PASS]:
            path = name.split("::", 1)[0]
            if path.endswith(".py") and path not in files:
                files.append(path)
        if not files:
            files = [f for f in self.test_files if f.endswith(".py") and is_test_path(f)]
        return files

    def test_command(self) -> str:
        """The shell command that runs the task's tests in /testbed."""
        if self.test_cmd:
            return self.test_cmd
        files = " ".join(shlex.quote(f) for f in self.tests_to_run())
        return f"python -m pytest -rA -p no:cacheprovider {files}".rstrip()

    def python_version(self, base_python: str) -> str:
        return self.env.python or base_python

    # ----------------------------------------------------------------------------- scripts

    def env_script(self) -> str:
        """Bash run while building the env image: system packages, venv, test requirements (offline)."""
        lines = ["set -euxo pipefail"]
        if self.env.system_packages:
            pkgs = " ".join(shlex.quote(p) for p in sorted(set(self.env.system_packages)))
            lines += [
                "apt-get update",
                f"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {pkgs}",
                "rm -rf /var/lib/apt/lists/*",
            ]
        lines.append(f"python3 -m venv {VENV}")
        if self.env.pip_packages:
            reqs = " ".join(shlex.quote(p) for p in self.env.pip_packages)
            lines.append(f"{VENV}/bin/pip install --no-index --find-links {WHEELS_DIR} {reqs}")
        return "\n".join(lines) + "\n"

    def install_script(self) -> str:
        """Bash run in /testbed while building the instance image (offline, wheelhouse only)."""
        lines = ["set -euxo pipefail", f"cd {TESTBED}"]
        lines += list(self.env.install)
        lines += self._warm_script()
        # Installing must not leave the tree dirty (egg-info and friends are git-ignored or removed).
        lines.append("git status --porcelain --untracked-files=no")
        return "\n".join(lines) + "\n"

    def _warm_script(self) -> list[str]:
        """Bash that stores compiled bytecode in the image, so a test run does not redo it each time.

        Byte-compiling is a large part of a short test run (marshmallow's four test files: 1.3 s from a
        fresh tree, 0.8 s with the bytecode in place), and every sandbox starts from the image's tree.
        The tree is byte-compiled; then, for pytest, the test files are collected once with the test
        patch applied, which stores pytest's assertion-rewritten modules in the version the grader runs
        (pytest 9.2, the bundled tasks' version, checks them by source hash, so re-applying the same test
        patch at grading time finds them valid; older versions check the file's mtime, and there only the
        test files the test patch leaves alone keep theirs).
        Bytecode (and the ``*.egg-info/`` metadata ``pip install -e .`` writes into a tree without a
        ``.gitignore``, e.g. a release's source distribution) is git-ignored locally
        (``.git/info/exclude``) so it never shows up in a diff or makes the tree look dirty. Nothing
        here can fail the build: a file that does not compile is compiled when imported, as before.
        """
        lines = [
            'x=$(git rev-parse --git-path info/exclude) && mkdir -p "$(dirname "$x")" && '
            "printf '%s\\n' '__pycache__/' '*.py[cod]' '*.egg-info/' >> \"$x\" || true",
            "python -m compileall -q -j 0 . >/dev/null 2>&1 || true",
        ]
        files = self.tests_to_run()
        if "pytest" not in self.test_command() or not files:
            return lines
        if self.test_patch.strip():
            delim = self._test_patch_delimiter()
            lines.append(f"git apply - <<'{delim}' || true\n{self.test_patch}{delim}")
        quoted = " ".join(shlex.quote(f) for f in files)
        lines.append(
            "timeout 600 python -m pytest --collect-only -q -p no:cacheprovider "
            f"{quoted} >/dev/null 2>&1 || true"
        )
        if self.test_patch.strip():
            lines.append(self._reset_test_files())
        return lines

    def _test_patch_delimiter(self) -> str:
        return "EOF_SRL_TEST_PATCH_" + hashlib.sha256(self.test_patch.encode()).hexdigest()[:12]

    def _reset_test_files(self) -> str:
        """Bash: the files the test patch touches back to the base commit (or gone, if it creates them)."""
        quoted = " ".join(shlex.quote(f) for f in self.test_files)
        return (
            f'for f in {quoted}; do if git cat-file -e {self.base_commit}:"$f" 2>/dev/null; '
            f'then git checkout -q {self.base_commit} -- "$f"; else rm -f "$f"; fi; done'
        )

    # ----------------------------------------------------------------------------- image keys

    def env_recipe(self) -> dict[str, Any]:
        """Everything the env image depends on (besides the base image)."""
        return {
            "recipe_version": RECIPE_VERSION,
            "python": self.env.python,
            "system_packages": sorted(set(self.env.system_packages)),
            "pip_packages": list(self.env.pip_packages),
            "script": self.env_script(),
        }

    def instance_recipe(self) -> dict[str, Any]:
        """Everything the instance image depends on (besides the env image).

        The repo's location (`repo_source`) is not part of it: the same commit is the same tree.
        """
        return {
            "recipe_version": RECIPE_VERSION,
            "instance_id": self.instance_id,
            "repo": self.repo_slug or self.repo.rstrip("/").rsplit("/", 1)[-1],
            "base_commit": self.base_commit,
            "install": list(self.env.install),
            "script": self.install_script(),
        }

    @property
    def env_key(self) -> str:
        return _hash(self.env_recipe())

    @property
    def instance_key(self) -> str:
        return _hash({"env": self.env_key, **self.instance_recipe()})

    # ----------------------------------------------------------------------------- io

    def to_yaml_dict(self, repo_source: str | None = None) -> dict[str, Any]:
        """Plain data for a task file: defaults that say nothing are left out, `env` always shown."""
        full = self.model_dump(mode="json")
        short = self.model_dump(mode="json", exclude_defaults=True)
        if repo_source is not None:
            full["repo_source"] = short["repo_source"] = repo_source
        keep = {"instance_id", "repo", "base_commit", "env", "log_parser", "FAIL_TO_PASS", "PASS_TO_PASS"}
        # A recipe derives these when the file is loaded: the file stores the recipe, not its output.
        derived = {"patch", "test_patch", "repo_source"} if self.recipe else set()
        return {k: v for k, v in full.items() if (k in short or k in keep) and k not in derived}


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
