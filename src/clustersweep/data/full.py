"""What a loader gives: the full, read-only arrays of one dataset, with the SHA-256 that identifies them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

_CHUNK = 1 << 20


class Full(NamedTuple):
    """A loader's output. `X_test` None: one set, which the dataset splits (`dataset.test_size`); `y_*` None: no
    labels. Labels are integer codes of `class_names` when the loader knows the names, else any values, which the
    dataset encodes. `sha256` identifies the arrays exactly: every source file's content and every setting of the
    loader that changes what it reads."""

    X_train: np.ndarray  # (n, d), float32
    y_train: np.ndarray | None
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    image_shape: tuple[int, ...] | None  # (H, W) grey or (H, W, C) colour, when rows are images
    sha256: str
    class_names: list[str] | None = None
    row_names: list[str] | None = None  # what each train row is (an image's file), where the loader knows
    value_range: tuple[float, float] | None = None  # (min, max) of X_train's values, once checked (`dataset`)


def in_memory(
    X_train: np.ndarray,
    y_train: np.ndarray | None,
    X_test: np.ndarray | None,
    y_test: np.ndarray | None,
    image_shape: tuple[int, ...] | None,
) -> Full:
    """A dataset made in memory (not read from files): identified by the sha256 of its arrays."""
    sha = hashlib.sha256()
    for array in (X_train, y_train, X_test, y_test):
        if array is not None:
            sha.update(np.ascontiguousarray(array).tobytes())
    shape = None if image_shape is None else tuple(int(s) for s in image_shape)
    return Full(X_train, y_train, X_test, y_test, shape, sha.hexdigest())


def read_only(*arrays: np.ndarray | None) -> tuple[np.ndarray | None, ...]:
    for array in arrays:
        if array is not None and array.flags.writeable:
            array.flags.writeable = False
    return arrays


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks (a large file is never held whole)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def combined_sha256(parts: Iterable[str]) -> str:
    """One SHA-256 over several: of sources, and of the settings that change what is read from them."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
