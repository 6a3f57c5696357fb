"""The shared-stage cache: work that depends only on the data and a stage's config is done once and reused by
every later run and sweep — the fitted reducer with its train/test embeddings and test reconstruction error, and
the data's exact PCA and SVD bases (spectrum, k95, the notebook's curves over k).

On disk with joblib.Memory (atomic writes, safe for parallel jobs), under `cache.dir`, by default a
`cache/` folder beside a SQLite tracking store or `~/.cache/clustersweep/cache` otherwise. Key: the data's sha256,
subsample, seed, the stage's resolved config and the code of its own steps (`features`) — never the files' place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from joblib import Memory
from omegaconf import DictConfig, OmegaConf

from clustersweep.data.dataset import load
from clustersweep.stages import reduce
from clustersweep.tracking.identity import targets_code
from clustersweep.tracking.store import local_dir


def cache_dir(cfg: DictConfig, uri: str) -> Path:
    return Path(cfg.cache.dir) if cfg.cache.get("dir") else local_dir(uri) / "cache"


def _fit_reducer(
    estimator: dict, data_sha256: str, n_train: int | None, n_test: int | None, seed: int, threads: int, dataset: dict
) -> tuple[Any, np.ndarray, np.ndarray, float | None]:
    data = load(OmegaConf.create(dataset), seed)
    reducer = instantiate(estimator)
    Z_train, Z_test = reduce.fit_transform(reducer, data.X_train, data.X_test)
    return reducer, Z_train, Z_test, reduce.reconstruction_mse(reducer, data.X_test, Z_test)


def _bases(data_sha256: str, n_train: int | None, n_test: int | None, seed: int, threads: int, dataset: dict) -> dict:
    return reduce.exact_bases(load(OmegaConf.create(dataset), seed).X_train)


def _cached(cfg: DictConfig, uri: str, func: Callable, *key: Any) -> tuple[Any, bool]:
    """func(*key, n_train, n_test, seed, threads, dataset) through the cache; returns (value, whether it was
    cached). The fit runs on the caller's `compute.threads`, which changes its last digits: it is in the key."""
    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    args = (*key, ds["n_train"], ds["n_test"], cfg.seed, cfg.compute.threads)
    if not cfg.cache.enabled:
        return func(*args, ds), False
    memo = Memory(cache_dir(cfg, uri), verbose=0).cache(func, ignore=["dataset"])
    hit = memo.check_call_in_cache(*args, ds)
    return memo(*args, ds), hit


def fit_reducer(cfg: DictConfig, data_sha256: str, uri: str) -> tuple[Any, np.ndarray, np.ndarray, float | None, bool]:
    """(fitted reducer, Z_train, Z_test, test reconstruction MSE or None, whether the cache had it)."""
    estimator = OmegaConf.to_container(cfg.reducer.estimator, resolve=True)
    code = targets_code(estimator)  # a step of our own (patch codes) is refitted when its code changes
    key = f"{data_sha256}+code:{code}" if code else data_sha256
    (reducer, Z_train, Z_test, mse), hit = _cached(cfg, uri, _fit_reducer, estimator, key)
    return reducer, Z_train, Z_test, mse, hit


def bases(cfg: DictConfig, data_sha256: str, uri: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Train's exact PCA and TruncatedSVD bases (`reduce.exact_bases`): name → (mean, axes, EVR)."""
    return _cached(cfg, uri, _bases, data_sha256)[0]


def common_space(cfg: DictConfig, data_sha256: str, uri: str, n_features: int) -> np.ndarray:
    """Train in the one space where every run's label-free metrics are computed: exact PCA to `metrics.common_k`
    components (all `n_features` of narrower data)."""
    estimator = {"_target_": "sklearn.decomposition.PCA", "n_components": min(cfg.metrics.common_k, n_features)}
    estimator["svd_solver"] = "covariance_eigh"
    return _cached(cfg, uri, _fit_reducer, estimator, data_sha256)[0][1]


def spectrum(cfg: DictConfig, data_sha256: str, uri: str) -> np.ndarray:
    """Explained-variance ratio of every principal component of train (exact, from the covariance matrix)."""
    return bases(cfg, data_sha256, uri)["pca"][2]
