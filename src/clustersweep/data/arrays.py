"""The full arrays of one dataset as a process keeps them: read-only, with the SHA-256 that identifies them."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np


class Full(NamedTuple):
    """The full, read-only arrays of one dataset, as cached per process."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int]
    sha256: str


def in_memory(
    X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, image_shape: tuple[int, int]
) -> Full:
    """A dataset made in memory (not read from files): read-only, identified by the sha256 of its arrays."""
    sha = hashlib.sha256()
    for array in (X_train, y_train, X_test, y_test):
        sha.update(np.ascontiguousarray(array).tobytes())
    return Full(*read_only(X_train, y_train, X_test, y_test), tuple(image_shape), sha.hexdigest())


def read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for array in arrays:
        array.flags.writeable = False
    return arrays
