"""The shared-stage cache: work that depends only on the data and a stage's config is done once and reused by
every later run and sweep — the fitted reducer with its train/test embeddings and test reconstruction error, and
the data's exact PCA and SVD bases (spectrum, k95, the notebook's curves over k).

On disk with joblib.Memory (atomic writes, safe for parallel jobs), under `cache.dir`, by default a
`cache/` folder beside a SQLite tracking store or `~/.cache/clustersweep/cache` otherwise. Key: the data's sha256,
subsample, seed (the run's; the `patches` metric space's own fixed one), the stage's resolved config and the code
of its own steps (`features`) — never the files' place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from joblib import Memory
from omegaconf import DictConfig, OmegaConf

from clustersweep.data.dataset import Dataset, load
from clustersweep.stages import clamps, reduce
from clustersweep.tracking.identity import numbers_only, targets_code
from clustersweep.tracking.store import local_dir


def cache_dir(cfg: DictConfig, uri: str) -> Path:
    return Path(cfg.cache.dir) if cfg.cache.get("dir") else local_dir(uri) / "cache"


def _fit_reducer(
    spec: dict,
    data_sha256: str,
    n_train: int | None,
    n_test: int | None,
    seed: int,
    threads: int,
    dataset: dict,
    estimator: dict | None = None,
) -> tuple[Any, np.ndarray, np.ndarray, float | None]:
    """`estimator` (default: `spec`, its key: the same without what only changes what it prints) fitted."""
    data = load(OmegaConf.create(dataset), seed)
    reducer = instantiate(estimator or spec)
    Z_train, Z_test = reduce.fit_transform(reducer, data.X_train, data.X_test)
    return reducer, Z_train, Z_test, reduce.reconstruction_mse(reducer, data.X_test, Z_test)


def _bases(data_sha256: str, n_train: int | None, n_test: int | None, seed: int, threads: int, dataset: dict) -> dict:
    return reduce.exact_bases(load(OmegaConf.create(dataset), seed).X_train)


def _cached(
    cfg: DictConfig, uri: str, func: Callable, *key: Any, seed: int | None = None, **outside: Any
) -> tuple[Any, bool]:
    """func(*key, n_train, n_test, seed, threads, dataset, **outside) through the cache, `outside` not in its key;
    returns (value, whether it was cached). `seed` (which draws a subsample): the run's, or a fixed one for what
    every seed shares. The fit runs on the caller's `compute.threads`, which changes its last digits: it is in the
    key."""
    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    args = (*key, ds["n_train"], ds["n_test"], cfg.seed if seed is None else seed, cfg.compute.threads)
    if not cfg.cache.enabled:
        return func(*args, ds, **outside), False
    memo = Memory(cache_dir(cfg, uri), verbose=0).cache(func, ignore=["dataset", *outside])
    hit = memo.check_call_in_cache(*args, ds, **outside)
    return memo(*args, ds, **outside), hit


def fit_reducer(cfg: DictConfig, data_sha256: str, uri: str) -> tuple[Any, np.ndarray, np.ndarray, float | None, bool]:
    """(fitted reducer, Z_train, Z_test, test reconstruction MSE or None, whether the cache had it)."""
    estimator = OmegaConf.to_container(cfg.reducer.estimator, resolve=True)
    code = targets_code(estimator)  # a step of our own (patch codes) is refitted when its code changes
    key = f"{data_sha256}+code:{code}" if code else data_sha256
    spec = numbers_only(estimator)  # verbose or not, the same fit
    (reducer, Z_train, Z_test, mse), hit = _cached(cfg, uri, _fit_reducer, spec, key, estimator=estimator)
    reduce.set_verbose(reducer, bool(cfg.get("verbose", False)))
    return reducer, Z_train, Z_test, mse, hit


def bases(cfg: DictConfig, data_sha256: str, uri: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Train's exact PCA and TruncatedSVD bases (`reduce.exact_bases`): name → (mean, axes, EVR)."""
    return _cached(cfg, uri, _bases, data_sha256)[0]


def common_space(cfg: DictConfig, data: Dataset, uri: str) -> np.ndarray:
    """Train in the one space where every run's label-free metrics are computed: exact PCA to `metrics.common_k`
    components (`clamps.common_k`: at most the train rows and the features)."""
    n_components, _ = clamps.common_k(cfg, "common", *data.X_train.shape)
    estimator = {"_target_": "sklearn.decomposition.PCA", "n_components": n_components}
    estimator["svd_solver"] = "covariance_eigh"
    return _cached(cfg, uri, _fit_reducer, estimator, data.sha256)[0][1]


def patch_space(cfg: DictConfig, data: Dataset, uri: str) -> np.ndarray:
    """Train in the common space of the patch codes: `metrics.patches` codes (their own fixed seed, never the
    run's), standardized, then exact PCA to `metrics.common_k` components (`clamps.common_k`: at most the train
    rows and the patch features); fitted once on the train rows that seed draws (all of train unless subsampled)
    and shared by every run of the data, whatever its reducer and seed. A run's own subsample (other rows) goes
    through that same fitted space."""
    p = cfg.metrics.patches
    codes = {"_target_": "clustersweep.stages.features.PatchCodes", "image_shape": list(data.image_shape)}
    codes.update(n_filters=p.n_filters, patch=p.patch, pool=p.pool, random_state=p.seed, _convert_="all")
    pca = {"_target_": "sklearn.decomposition.PCA", "svd_solver": "covariance_eigh"}
    pca["n_components"], _ = clamps.common_k(cfg, "patches", *data.X_train.shape)
    scaler = {"_target_": "sklearn.preprocessing.StandardScaler"}
    estimator = {"_target_": "sklearn.pipeline.make_pipeline", "_args_": [codes, scaler, pca]}
    key = f"{data.sha256}+code:{targets_code(estimator)}"  # refitted when the patch codes' code changes
    (space, Z_train, _, _), _ = _cached(cfg, uri, _fit_reducer, estimator, key, seed=p.seed)
    return Z_train if not data.subsample or cfg.seed == p.seed else space.transform(data.X_train)


def spectrum(cfg: DictConfig, data_sha256: str, uri: str) -> np.ndarray:
    """Explained-variance ratio of every principal component of train (exact, from the covariance matrix)."""
    return bases(cfg, data_sha256, uri)["pca"][2]


CACHED = {"reducer fits": _fit_reducer, "data bases": _bases}  # what the cache holds, by what a user calls it


def stored(folder: Path) -> dict[str, tuple[int, int]]:
    """What the cache in `folder` holds: kind → (entries, bytes)."""
    out = {}
    for kind, func in CACHED.items():
        where = folder / Memory(folder, verbose=0).cache(func).func_id  # joblib's folder for the function
        files = [f for f in where.rglob("*") if f.is_file()]
        out[kind] = (sum(f.name == "output.pkl" for f in files), sum(f.stat().st_size for f in files))
    return out


def clear(folder: Path) -> None:
    """Empty the cache in `folder` (only what it cached: the folder may hold more); later runs fit again."""
    for func in CACHED.values():
        Memory(folder, verbose=0).cache(func).clear(warn=False)
