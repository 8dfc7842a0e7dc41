"""A smoke run of the benchmarks (``bench/run.py --quick``): they keep working,
and what they print is the shape docs/benchmarks.md reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")


def test_the_benchmarks_run(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=Path(__file__).resolve().parent.parent,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    calls = report["asgi_in_process_calls_per_s"]
    assert calls["bare"] > 0 and calls["cached"] > calls["uncached"] > 0, "a hit is far cheaper than a call"
    assert report["hit_cost_async_guard_us"] > 0 and report["hit_cost_sync"]["get_session_us"] > 0
    revocation = report["revocation"]
    assert revocation["p50_ms_after_return"] <= revocation["p99_ms_after_return"] < 10_000
    assert report["jwt"]["jwt_verifications_per_s"] > 0
    if "http" in report:
        assert {mode: figures["rps"] > 0 for mode, figures in report["http"].items()} == {
            "bare": True,
            "cached": True,
            "uncached": True,
        }
