"""Images for SWE-bench-family tasks (docker tier). Prebuilt images pulled where a registry answers
(harness.images.pull_prebuilt): here no registry is reachable, so the pull path is tested for its error (a
real daemon pull). The wheelhouse of a task that names its Python, resolved by the image's interpreter."""

from __future__ import annotations

import pytest

from envs.spec import TaskSpec
from harness.images import (
    ImageBuildError,
    PrebuiltPullError,
    ensure_instance_image,
    prebuilt_names,
    pull_image,
)

ROW_IMAGE = "srl-swe-test.invalid/nobody/sweb.eval.x86_64.nobody_1776_nothing-7:v1"


def _spec() -> TaskSpec:
    return TaskSpec(
        instance_id="nobody__nothing-7",
        repo="nobody/nothing",
        base_commit="0" * 40,
        metadata={"image": ROW_IMAGE},
    )


@pytest.mark.docker
def test_pull_without_a_registry_names_each_image_why_and_the_ways_out(docker_client, tmp_path) -> None:
    spec = _spec()
    names = prebuilt_names(spec)
    assert names == [
        ROW_IMAGE,
        "swebench/sweb.eval.x86_64.nobody_1776_nothing-7:latest",
        "xingyaoww/sweb.eval.x86_64.nobody_s_nothing-7:latest",
    ]
    said: list[str] = []
    with pytest.raises(PrebuiltPullError) as exc:
        ensure_instance_image(
            spec, client=docker_client, log_dir=tmp_path, image_source="prebuilt", log=said.append
        )
    assert isinstance(exc.value, ImageBuildError)
    msg = str(exc.value)
    first, *reasons, ways = msg.splitlines()
    assert first.startswith(
        "task nobody__nothing-7: no prebuilt image on this machine and none could be pulled"
    )
    assert len(reasons) == 3
    for name, reason in zip(names, reasons, strict=True):
        assert reason.startswith(f"  {name}: ") and len(reason) > len(name) + 6, reason  # the daemon's reason
    assert ways.startswith("Ways out: --image-source build (or auto)") and "docker load -i FILE" in ways
    assert said == [f"pulling {n}" for n in names]  # each pull was really tried, in order
    # `auto` never pulls: no prebuilt image here means it is built (not tried here: no repository)


@pytest.mark.docker
def test_pull_image_reports_the_daemon_reason(docker_client) -> None:
    with pytest.raises(PrebuiltPullError, match=r"^srl-swe-test\.invalid/a/b:latest: \S"):
        pull_image(docker_client, "srl-swe-test.invalid/a/b")


@pytest.mark.docker
def test_a_task_that_names_its_python_gets_the_wheels_of_the_image_interpreter(
    docker_client, base_image, tmp_path, monkeypatch
) -> None:
    """redis 5.0.1 needs ``async-timeout; python_full_version <= "3.11.2"``: bookworm's interpreter
    (3.11.2) needs it, the host's pip (its own 3.11.x) decides for itself unless the set is resolved by
    the image's interpreter, as it is for a task that names its Python (Django's test requirements)."""
    import platform

    from packaging.version import Version

    from harness.images import image_python_full, pip_download

    monkeypatch.setenv("SRL_SWE_CACHE", str(tmp_path))
    image_version = image_python_full(docker_client, base_image)
    assert image_version.startswith("3.11.")
    needs = Version(image_version) <= Version("3.11.2")
    exact = pip_download(["redis==5.0.1"], "t-exact", None, "3.11", base_image, docker_client, exact=True)
    assert any(f.name.startswith("async_timeout-") for f in exact.iterdir()) == needs
    host = pip_download(["redis==5.0.1"], "t-host", None, "3.11", base_image, docker_client)
    host_needs = Version(platform.python_version()) <= Version("3.11.2")
    assert any(f.name.startswith("async_timeout-") for f in host.iterdir()) == host_needs
