"""scripts/soak.py, briefly: two writers on a fresh SQLite store for a few seconds; the 3-minute figures for both
stores are in docs/benchmarks.md."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT, WAIT


def test_two_writers_on_a_fresh_sqlite_store_lose_nothing():
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "soak.py"),
        "--writers",
        "2",
        "--minutes",
        "0.05",
        "--store",
        "sqlite",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT)
    assert res.returncode == 0, res.stdout + res.stderr
    counts = re.search(r"^attempted (\d+), finished (\d+), failed 0, lost 0$", res.stdout, re.M)
    assert counts and int(counts[1]) == int(counts[2]) >= 2, res.stdout
    assert re.search(r"^time of a run: p50 [\d.]+ s, p95 [\d.]+ s", res.stdout, re.M), res.stdout
