"""The usage example in README.md, run as a script against the live server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .support import KeyportServer

README = Path(__file__).resolve().parent.parent / "README.md"


def _block(language: str, after: str = "") -> str:
    """The first fenced block of ``language`` in README.md after the text ``after``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(after) if after else 0
    match = re.search(rf"```{language}\n(.*?)```", text[start:], re.DOTALL)
    assert match, f"no ```{language} block in {README}"
    return match.group(1)


def test_readme_example_prints_what_the_readme_says(keyport_server: KeyportServer) -> None:
    example = _block("python", after="## Usage")
    assert "127.0.0.1:50051" in example
    script = example.replace("127.0.0.1:50051", keyport_server.address)

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == _block("text", after="## Usage")
