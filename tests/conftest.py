"""Shared fixtures: composed configs shrunk to tiny sizes, a throwaway MLflow store, and run.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[1]
# Tiny sizes for the synthetic data; a key is set only where the chosen config has it.
TINY = {
    "reducer.k": 8,
    "clusterer.K": 4,
    "clusterer.n_init": 2,
    "metrics.silhouette_sample_size": 300,
    "plots.scatter_points": 200,
}


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database, made once: creating the schema takes seconds."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def store(tmp_path: Path, empty_store: Path) -> str:
    """A fresh SQLite tracking store for one test (a copy of the empty one)."""
    db = tmp_path / "mlruns" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(empty_store, db)
    return f"sqlite:///{db}"


@pytest.fixture
def make_cfg(store: str):
    """compose() the project's config with TINY + the given overrides, tracking into `store`."""

    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            dataset = ["dataset=synthetic"] if tiny else []
            cfg = compose("config", overrides=[*dataset, f"tracking.uri={store}", *overrides])
        given = {o.split("=")[0].lstrip("+~") for o in overrides}
        for key, value in (TINY if tiny else {}).items():
            if key not in given and OmegaConf.select(cfg, key) is not None:
                OmegaConf.update(cfg, key, value)
        return cfg

    return make


def run_py(*args: str, store: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python run.py …` in a subprocess against `store`, Hydra's outputs kept out of the project."""
    out = Path(store[len("sqlite:///") :]).parent.parent / "hydra"
    cmd = [
        sys.executable,
        str(ROOT / "run.py"),
        *args,
        f"tracking.uri={store}",
        f"hydra.run.dir={out}/run",
        f"hydra.sweep.dir={out}/sweep",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(cmd, cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def runs(store: str, experiment: str = "synthetic") -> tuple:
    """(client, every run of the experiment; [] when it does not exist)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    exp = client.get_experiment_by_name(experiment)
    return client, ([] if exp is None else client.search_runs([exp.experiment_id], max_results=1000))
