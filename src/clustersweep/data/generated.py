"""Loaders of datasets made in memory, the same arrays and SHA-256 in every run: scikit-learn's bundled handwritten
digits, and generated spots fixed by `seed_data` (for tests and demos)."""

from __future__ import annotations

import numpy as np

from clustersweep.data.full import Full, in_memory


class Synthetic:
    """Loader of blurred spots at class-specific places on a circle, each sample jittered, dimmed and noisy.

    Fixed by seed_data alone, not the run seed, so the data and its sha256 are the same in every run; the
    classes are far apart, so a working pipeline must recover them (tests, demos).
    """

    def __init__(
        self, name: str, seed_data: int, n_classes: int, size_train: int, size_test: int, image_size: list[int]
    ):
        self.name, self.seed_data, self.n_classes = name, int(seed_data), int(n_classes)
        self.size_train, self.size_test = int(size_train), int(size_test)
        self.image_size = (int(image_size[0]), int(image_size[1]))

    def load(self) -> Full:
        rng = np.random.default_rng(self.seed_data)
        h, w = self.image_size
        angles = np.pi / 2 - 2 * np.pi * np.arange(self.n_classes) / self.n_classes  # class 0 at the top, clockwise
        centre = np.array([(h - 1) / 2, (w - 1) / 2])
        spots = centre + 0.3 * min(h, w) * np.stack([-np.sin(angles), np.cos(angles)], axis=1)  # (row, col)
        X_train, y_train = _spots(rng, spots, self.size_train, self.image_size)
        X_test, y_test = _spots(rng, spots, self.size_test, self.image_size)
        return in_memory(X_train, y_train, X_test, y_test, self.image_size)


class Digits:
    """Loader of scikit-learn's 1,797 8x8 handwritten digits (UCI; shipped with scikit-learn, so no download), as
    one set: the dataset splits it (`dataset.test_size`, `dataset.split_seed`)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def load(self) -> Full:
        from sklearn.datasets import load_digits

        images = load_digits()
        X = (images.data / 16.0).astype(np.float32)  # pixel values are 0..16
        return in_memory(X, images.target.astype(np.int64), None, None, images.images.shape[1:])


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
