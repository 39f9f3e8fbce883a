"""A sandbox's files: write, read, copy in and out, the repository's diff, a snapshot image.

`SandboxFiles` is the half of `Sandbox` that moves data in and out of the container through the
daemon's archive API; it needs the container, the sandbox's user and `run` (for `mkdir` and `git`).
"""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path
from typing import Any

from docker.errors import NotFound

from envs.spec import TESTBED
from harness.docker_env import labels
from harness.sandbox.results import SandboxError


class SandboxFiles:
    """File helpers of `Sandbox` (a mixin: `container`, `user` and `run` come from there)."""

    container: Any  # docker.models.containers.Container, once started
    user: str | None

    # -- files -------------------------------------------------------------------------------
    def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        payload = data.encode() if isinstance(data, str) else data
        p = Path(path)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(p.name)
            info.size = len(payload)
            info.mode = mode
            info.mtime = int(time.time())
            if self.user == "srl":
                info.uid = info.gid = 1000
            tar.addfile(info, io.BytesIO(payload))
        self.run(["mkdir", "-p", str(p.parent)], user="root")
        if not self.container.put_archive(str(p.parent), buf.getvalue()):
            raise SandboxError(f"could not write {path} in the sandbox")

    def read_file(self, path: str) -> bytes:
        try:
            stream, _ = self.container.get_archive(path)
        except NotFound:
            raise FileNotFoundError(f"{path} does not exist in the sandbox") from None
        raw = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = tar.next()
            if member is None or not member.isfile():
                raise IsADirectoryError(f"{path} is not a regular file in the sandbox")
            return tar.extractfile(member).read()

    def copy_in(self, host_path: str | Path, dest_dir: str) -> None:
        """Copy a host file or directory into `dest_dir` in the sandbox."""
        host_path = Path(host_path)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:

            def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
                if self.user == "srl":
                    info.uid = info.gid = 1000
                    info.uname = info.gname = "srl"
                return info

            tar.add(str(host_path), arcname=host_path.name, filter=owned)
        self.run(["mkdir", "-p", dest_dir], user="root")
        if not self.container.put_archive(dest_dir, buf.getvalue()):
            raise SandboxError(f"could not copy {host_path} into {dest_dir}")

    def copy_out(self, path: str, host_dir: str | Path) -> Path:
        """Copy a file or directory from the sandbox into `host_dir`; returns the host path."""
        host_dir = Path(host_dir)
        host_dir.mkdir(parents=True, exist_ok=True)
        try:
            stream, _ = self.container.get_archive(path)
        except NotFound:
            raise FileNotFoundError(f"{path} does not exist in the sandbox") from None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            tar.extractall(host_dir, filter="data")
        return host_dir / Path(path).name

    def diff(self, repo: str = TESTBED) -> str:
        """`git diff` of everything changed in `repo` against HEAD (new files included), without touching
        its index. The temporary index starts from HEAD's tree with no stat data, so every file is hashed:
        a copy of the real index would trust its cached stat data, and an edit that keeps a file's size
        within the index's second ("racy git") would be missed."""
        cmd = (
            f'cd {repo} && idx=$(mktemp) && rm -f "$idx" && '
            '{ GIT_INDEX_FILE="$idx" git read-tree HEAD 2>/dev/null || true; } && '
            'GIT_INDEX_FILE="$idx" git add -A >/dev/null 2>&1 && '
            'GIT_INDEX_FILE="$idx" git diff --cached --binary; rc=$?; rm -f "$idx"; exit $rc'
        )
        res = self.run(cmd)
        if res.exit_code != 0:
            raise SandboxError(f"git diff failed in {repo}: {res.output[-500:]}")
        return res.output

    def commit(self, repository: str, tag: str = "latest") -> str:
        """Snapshot the container as an image (labelled) and return its id."""
        img = self.container.commit(repository=repository, tag=tag, conf={"Labels": labels(kind="snapshot")})
        return img.id
