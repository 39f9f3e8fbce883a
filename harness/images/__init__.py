"""Env and instance images for tasks: base -> env -> instance, each tagged by a content hash.

- base: ``harness.base_image`` (Debian + python3 + git), one per Python: the Debian release that ships
  the task's ``env.python`` (bullseye 3.9, bookworm 3.11, trixie 3.13), or the user's ``--base-image``.
- env (``srl-env:<hash>``): a venv at /opt/venv (the base's Python) with the task's test
  requirements and system packages. Shared by every task with the same environment recipe.
- instance (``srl-instance:<id>-<hash>``): the repo at /testbed at its base commit (nothing later in
  its git history, see `envs.repos`), installed by the task's install commands. Working tree clean.

The tag of each image is a hash of its recipe (`TaskSpec.env_recipe` / `instance_recipe`) and of the
image below it, so an unchanged task never rebuilds and any changed recipe always does. Sandboxes have
no network, and neither do our pip installs: Python packages are downloaded on the host (with the
host's pip configuration) into a cache, copied into the build context, and installed with
``pip install --no-index --find-links``. For a Python other than the host's the wheelhouse holds
binary wheels for that interpreter (``pip download --python-version X.Y --only-binary :all:``); a
top-level requirement with no such wheel comes as its source distribution and is built in the image.

Prebuilt images (``image_source``): SWE-bench's published instance images
(``swebench/sweb.eval.x86_64.<id with "__" as "_1776_">``), SWE-Gym's and SWE-smith's (a row's ``image`` or
``image_name``) are used when present locally (``auto``, ``prebuilt``), pulled where a registry answers
(``prebuilt``). A thin image derived from one (``srl-instance:<id>-prebuilt-<hash>``, labelled) puts the
conda env ``testbed`` first on PATH and lets the sandbox user own /testbed, so our sandbox and scripts run
there as SWE-bench's eval scripts do (``conda activate testbed; cd /testbed``).

Modules: `harness.images.core` (image sources, tags, the base per Python, the logged build),
`harness.images.wheelhouse` (host-side downloads for offline installs), `harness.images.build` (env and
instance images), `harness.images.prebuilt` (published images: found, pulled, adapted) and
`harness.images.prune`. Everything public is importable from ``harness.images``.
"""

from harness.images.build import ensure_env_image, ensure_instance_image
from harness.images.core import (
    BASE_PYTHON,
    ENV_REPO,
    IMAGE_SOURCE_ENV,
    IMAGE_SOURCES,
    INSTANCE_REPO,
    KINDS,
    PREBUILT_CONDA,
    PREBUILT_ENV_NAME,
    ImageBuildError,
    Log,
    base_for,
    base_image_id,
    build_image,
    check_pythons,
    default_log_dir,
    env_tag,
    image_exists,
    image_python,
    image_python_full,
    image_tags,
    instance_tag,
)
from harness.images.prebuilt import (
    PrebuiltPullError,
    ensure_prebuilt_adapter,
    find_prebuilt,
    prebuilt_names,
    pull_image,
    pull_prebuilt,
    swebench_image_name,
    swegym_image_name,
)
from harness.images.prune import project_images, prune_images, remove_image
from harness.images.wheelhouse import build_requirements, install_requirements, pip_download, wheel_cache

__all__ = [
    "BASE_PYTHON",
    "ENV_REPO",
    "IMAGE_SOURCES",
    "IMAGE_SOURCE_ENV",
    "INSTANCE_REPO",
    "KINDS",
    "PREBUILT_CONDA",
    "PREBUILT_ENV_NAME",
    "ImageBuildError",
    "Log",
    "PrebuiltPullError",
    "base_for",
    "base_image_id",
    "build_image",
    "build_requirements",
    "check_pythons",
    "default_log_dir",
    "ensure_env_image",
    "ensure_instance_image",
    "ensure_prebuilt_adapter",
    "env_tag",
    "find_prebuilt",
    "image_exists",
    "image_python",
    "image_python_full",
    "image_tags",
    "install_requirements",
    "instance_tag",
    "pip_download",
    "prebuilt_names",
    "project_images",
    "prune_images",
    "pull_image",
    "pull_prebuilt",
    "remove_image",
    "swebench_image_name",
    "swegym_image_name",
    "wheel_cache",
]
