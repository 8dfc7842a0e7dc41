"""The package's metadata: what the registry will show (``test.sh`` also
builds the sdist and wheel and runs ``twine check`` on them)."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

import keyport

# Python 3.11+ (the default venv); older ones skip this module.
tomllib = pytest.importorskip("tomllib")

HERE = Path(__file__).resolve().parent.parent
REPOSITORY = "https://github.com/keyport/keyport"


def test_the_version_is_the_workspace_version_written_once() -> None:
    project = tomllib.loads((HERE / "pyproject.toml").read_text())["project"]
    workspace = tomllib.loads((HERE.parent.parent / "Cargo.toml").read_text())["workspace"]["package"]
    assert project["version"] == workspace["version"]
    assert keyport.__version__ == importlib.metadata.version("keyport-client") == project["version"]
    # Nowhere else in the hand-written code.
    for source in (HERE / "src" / "keyport").glob("*.py"):
        assert f'"{project["version"]}"' not in source.read_text(), source


def test_the_metadata_is_complete() -> None:
    meta = importlib.metadata.metadata("keyport-client")
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Author"] == "Keyport contributors" or "Keyport contributors" in (meta["Author-email"] or "")
    urls = dict(entry.split(", ", 1) for entry in meta.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Repository", "Documentation", "Issues"}
    assert all(url.startswith(REPOSITORY) for url in urls.values())
    assert "keyport" in (meta["Keywords"] or "")


def test_the_readme_links_work_outside_the_repository() -> None:
    readme = (HERE / "README.md").read_text()
    relative = re.findall(r"\]\((?!https?://|#)([^)]+)\)", readme)
    assert relative == [], f"relative links break on the registry's page: {relative}"
