"""The README's promises: its Python example runs as written, its links resolve, the docs build strictly."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_is_short_and_its_links_resolve() -> None:
    assert len(README.splitlines()) <= 250
    links = re.findall(r"\]\(((?!https?://)[^)#]+)\)", README)
    assert links, "the README links to its docs pages"
    for link in links:
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"


def test_docs_build_strictly(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.fail("mkdocs is not installed: pip install -e '.[docs]' (make test installs it)")
    proc = subprocess.run(
        # as the README says to run it, from the root (mkdocs resolves `docs_dir: .` against the relative path)
        [mkdocs, "build", "--strict", "-q", "-f", "docs/mkdocs.yml", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "grading" / "index.html").exists()


@pytest.mark.docker
def test_readme_python_example_runs(docker_client, base_image, capsys) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == "resolved"
    assert 0.5 < float(out[-1]) < 1.0
