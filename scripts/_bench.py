"""What the benchmark scripts share: `python run.py …` timed in a subprocess against a fresh tracking store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_run_py(args: list[str], tmp: Path) -> tuple[float, str]:
    """Wall time of `python run.py *args` into a store under tmp (cold cache); exits on failure."""
    store = f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}"
    cmd = [
        sys.executable,
        str(ROOT / "run.py"),
        *args,
        f"tracking.uri={store}",
        f"hydra.run.dir={tmp / 'hydra'}",
        f"hydra.sweep.dir={tmp / 'hydra'}",
    ]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"run.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, store
