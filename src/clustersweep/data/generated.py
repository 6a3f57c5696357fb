"""Datasets made in memory, fixed by `seed_data` so their arrays and SHA-256 are the same in every run:
scikit-learn's bundled handwritten digits, and generated spots (for tests and demos)."""

from __future__ import annotations

import functools

import numpy as np

from clustersweep.data.arrays import Full, in_memory
from clustersweep.errors import DataError


@functools.lru_cache(maxsize=4)
def synthetic(seed_data: int, n_classes: int, size_train: int, size_test: int, image_shape: tuple[int, int]) -> Full:
    """Blurred spots at class-specific places on a circle, each sample jittered, dimmed and noisy.

    Fixed by seed_data alone, not the run seed, so the data and its sha256 are the same in every run; the
    classes are far apart, so a working pipeline must recover them (tests, demos).
    """
    rng = np.random.default_rng(seed_data)
    h, w = image_shape
    angles = np.pi / 2 - 2 * np.pi * np.arange(n_classes) / n_classes  # class 0 at the top, then clockwise
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    spots = centre + 0.3 * min(h, w) * np.stack([-np.sin(angles), np.cos(angles)], axis=1)  # (row, col)
    X_train, y_train = _spots(rng, spots, size_train, image_shape)
    X_test, y_test = _spots(rng, spots, size_test, image_shape)
    return in_memory(X_train, y_train, X_test, y_test, image_shape)


@functools.lru_cache(maxsize=2)
def digits(seed_data: int, size_test: int) -> Full:
    """scikit-learn's 1,797 8x8 handwritten digits (UCI; shipped with scikit-learn, so no download), split into
    train and test by a stratified split fixed by seed_data, so the data and its sha256 are the same in every run."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images = load_digits()
    X = (images.data / 16.0).astype(np.float32)  # pixel values are 0..16
    y = images.target.astype(np.int64)
    if not 10 <= size_test <= len(y) - 10:
        raise DataError(f"dataset.size_test={size_test} is out of range for the digits: use 10..{len(y) - 10}")
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=size_test, stratify=y, random_state=seed_data)
    return in_memory(X_train, y_train, X_test, y_test, images.images.shape[1:])


def _spots(
    rng: np.random.Generator, spots: np.ndarray, n: int, image_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    h, w = image_shape
    y = rng.permutation(np.arange(n) % len(spots))
    where = spots[y] + rng.uniform(-2, 2, (n, 2))
    rows = np.arange(h)[None, :, None] - where[:, 0, None, None]
    cols = np.arange(w)[None, None, :] - where[:, 1, None, None]
    sigma = 0.08 * min(h, w)
    X = rng.uniform(0.6, 1, (n, 1, 1)) * np.exp(-(rows**2 + cols**2) / (2 * sigma**2))
    X += rng.normal(0, 0.05, (n, h, w))
    return np.clip(X, 0, 1).reshape(n, h * w).astype(np.float32), y.astype(np.int64)
