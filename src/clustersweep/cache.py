"""The shared-stage cache: a reducer is fitted once per (data, subsample, seed, reducer config) and its
embeddings reused by every later run and sweep that needs them.

On disk with joblib.Memory (atomic writes, safe for parallel jobs), under `cache.dir`, by default a
`cache/` folder beside a SQLite tracking store or `~/.cache/clustersweep/stages` otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from joblib import Memory
from omegaconf import DictConfig, OmegaConf

from clustersweep import reduce
from clustersweep.data import load


def cache_dir(cfg: DictConfig, uri: str) -> Path:
    if cfg.cache.get("dir"):
        return Path(cfg.cache.dir)
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).parent / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "clustersweep" / "stages"


def _fit_reducer(
    estimator: dict, n_train: int | None, n_test: int | None, seed: int, data_sha256: str, dataset: dict
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Everything but `dataset` (where to find the files) is the cache key; the data is named by its sha256."""
    data = load(OmegaConf.create(dataset), seed)
    reducer = instantiate(estimator)
    Z_train, Z_test = reduce.fit_transform(reducer, data.X_train, data.X_test)
    return reducer, Z_train, Z_test


def fit_reducer(cfg: DictConfig, data_sha256: str, uri: str) -> tuple[Any, np.ndarray, np.ndarray, bool]:
    """(fitted reducer, Z_train, Z_test, whether the cache had it)."""
    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    args = (
        OmegaConf.to_container(cfg.reducer.estimator, resolve=True),
        ds["n_train"],
        ds["n_test"],
        cfg.seed,
        data_sha256,
        ds,
    )
    if not cfg.cache.enabled:
        return (*_fit_reducer(*args), False)
    cached = Memory(cache_dir(cfg, uri), verbose=0).cache(_fit_reducer, ignore=["dataset"])
    hit = cached.check_call_in_cache(*args)
    return (*cached(*args), hit)
