"""Shared fixtures: composed configs shrunk to tiny sizes, a throwaway MLflow store, and run.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "dataset=synthetic",
    "reducer.k=8",
    "clusterer.K=4",
    "clusterer.n_init=2",
    "metrics.silhouette_sample_size=300",
    "plots.scatter_points=200",
]


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A fresh SQLite tracking store for one test."""
    return f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


@pytest.fixture
def make_cfg(store: str):
    """compose() the project's config with TINY + the given overrides, tracking into `store`."""

    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return compose("config", overrides=[*(TINY if tiny else []), f"tracking.uri={store}", *overrides])

    return make


def run_py(*args: str, store: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python run.py …` in a subprocess against `store`, Hydra's outputs kept out of the project."""
    out = Path(store[len("sqlite:///"):]).parent.parent / "hydra"
    cmd = [sys.executable, str(ROOT / "run.py"), *args, f"tracking.uri={store}",
           f"hydra.run.dir={out}/run", f"hydra.sweep.dir={out}/sweep"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(cmd, cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout, env=env)
