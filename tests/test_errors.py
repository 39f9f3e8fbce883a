"""One exception base: every exception class the project defines derives from `SrlSweError`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from trajectories.errors import SrlSweError

PACKAGES = ("trajectories", "envs", "harness", "srl_agent")
# Runs inside the sandbox with the standard library only; its errors never leave the script.
STDLIB_ONLY = {"harness.tools.sandbox_tools.ToolError"}


def _project_exceptions() -> list[type[BaseException]]:
    found = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            module = importlib.import_module(info.name)
            for obj in vars(module).values():
                if (
                    inspect.isclass(obj)
                    and issubclass(obj, BaseException)
                    and obj.__module__ == module.__name__
                ):
                    found.append(obj)
    return found


def test_every_project_exception_derives_from_srl_swe_error() -> None:
    classes = _project_exceptions()
    # the walk reaches every layer (a walk that finds nothing would pass vacuously); names, not modules,
    # so that moving a class between modules of its package does not matter here
    names = {c.__qualname__ for c in classes}
    for expected in ("ActionParseError", "RecipeError", "SandboxError", "ConfigError", "ToolError"):
        assert expected in names
    outside = sorted(
        f"{c.__module__}.{c.__qualname__}"
        for c in classes
        if not issubclass(c, SrlSweError) and f"{c.__module__}.{c.__qualname__}" not in STDLIB_ONLY
    )
    assert outside == [], f"exceptions without the SrlSweError base: {outside}"


def test_builtin_bases_still_catch() -> None:
    from envs.recipes import RecipeError
    from harness.sandbox import SandboxError
    from srl_agent.models import ModelNotFoundError
    from trajectories.actions import ActionParseError, parse_answer

    with pytest.raises(ValueError):
        raise RecipeError("bad recipe")
    with pytest.raises(RuntimeError):
        raise SandboxError("no container")
    with pytest.raises(FileNotFoundError):
        raise ModelNotFoundError("no model")
    # a real error raised by project code is caught both ways
    with pytest.raises(SrlSweError):
        parse_answer("no think block")
    with pytest.raises(ValueError):
        parse_answer("no think block")
    assert issubclass(ActionParseError, SrlSweError)


def test_each_package_exports_the_base() -> None:
    for package in PACKAGES:
        assert importlib.import_module(package).SrlSweError is SrlSweError
