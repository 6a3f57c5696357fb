"""A run's data: the dataset its config names, checked against that config, and the run's stratified, seeded
subsample of each split. The full arrays are cached per process (`idx`, `generated`); each run takes its own
subsample of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig

from clustersweep.data import generated, idx
from clustersweep.data.arrays import Full
from clustersweep.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """A train/test split ready for the pipelines.

    Without subsampling the arrays are the per-process cache itself, made read-only so that no run can alter
    what the next one sees: copy before changing them in place.
    """

    X_train: np.ndarray  # float32, (n, H*W), in [0, 1]
    y_train: np.ndarray  # int64, (n,)
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    image_shape: tuple[int, int]
    sha256: str  # identifies the full source data (before subsampling)


def load(cfg: DictConfig, seed: int) -> Dataset:
    """Load the `dataset` config's data and take the run's stratified subsample (seeded, so runs repeat)."""
    class_names = [str(c) for c in cfg.class_names]
    if cfg.kind == "idx":
        full = idx.load_idx(idx.IdxSource.from_cfg(cfg))
    elif cfg.kind == "synthetic":
        if len(class_names) != cfg.n_classes:
            raise DataError(
                f"dataset.class_names has {len(class_names)} names but dataset.n_classes={cfg.n_classes}; "
                "give one name per class"
            )
        full = generated.synthetic(
            int(cfg.seed_data),
            int(cfg.n_classes),
            int(cfg.size_train),
            int(cfg.size_test),
            (int(cfg.image_shape[0]), int(cfg.image_shape[1])),
        )
    elif cfg.kind == "digits":
        full = generated.digits(int(cfg.seed_data), int(cfg.size_test))
    else:
        raise DataError(f"dataset.kind={cfg.kind!r} is unknown; use 'idx', 'digits' or 'synthetic'")
    _check_against_cfg(full, cfg, class_names)
    X_train, y_train = _subsample(full.X_train, full.y_train, cfg.n_train, seed, "dataset.n_train")
    X_test, y_test = _subsample(full.X_test, full.y_test, cfg.n_test, seed, "dataset.n_test")
    return Dataset(X_train, y_train, X_test, y_test, class_names, full.image_shape, full.sha256)


def _check_against_cfg(full: Full, cfg: DictConfig, class_names: list[str]) -> None:
    """Catch a config that does not describe the data, before it mislabels plots or metrics."""
    if full.image_shape != tuple(cfg.image_shape):
        raise DataError(
            f"the {cfg.name} images are {full.image_shape[0]}x{full.image_shape[1]} but "
            f"dataset.image_shape={list(cfg.image_shape)}; fix dataset.image_shape"
        )
    for split, y in (("train", full.y_train), ("test", full.y_test)):
        expected = cfg.get(f"size_{split}")
        if expected is not None and len(y) != expected:
            raise DataError(
                f"the {cfg.name} {split} split has {len(y)} samples but dataset.size_{split}={expected}; "
                f"fix dataset.size_{split}"
            )
        if len(y) and not 0 <= y.min() <= y.max() < len(class_names):
            raise DataError(
                f"the {cfg.name} {split} labels span {y.min()}..{y.max()} but dataset.class_names has "
                f"{len(class_names)} names; give one name per label"
            )


def _subsample(X: np.ndarray, y: np.ndarray, n: int | None, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Exactly n rows, drawn per class in proportion to the class sizes, so subsampling keeps the class mix.

    Largest-remainder allocation instead of train_test_split, which refuses n when fewer than one row per
    class would be left out.
    """
    if n is None or n == len(y):
        return X, y
    classes, counts = np.unique(y, return_counts=True)
    if not len(classes) <= n <= len(y):
        raise DataError(
            f"{what}={n} is out of range: use {len(classes)}..{len(y)} (at least one per class, at most all) "
            "or null for all"
        )
    share = n * counts / len(y)
    quota = np.floor(share).astype(np.int64)
    quota[np.argsort(quota - share, kind="stable")[: n - quota.sum()]] += 1
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota, strict=True)]
    idx = np.sort(np.concatenate(picks))
    return X[idx], y[idx]
