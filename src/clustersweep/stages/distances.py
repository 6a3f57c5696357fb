"""Pairwise Euclidean distances of one set of points, kept for the work a sweep repeats on them: the silhouettes
of every K or eps use one upper triangle (`cluster_sums`), and DBSCAN's fits at every eps one matrix (`matrix`).

Stored in float32, from BLAS products of augmented rows. The silhouette's are computed in float32 too: twice the
speed of float64, and its sums of distances move by ~1e-6. DBSCAN's are computed in float64: float32 arithmetic
leaves a near pair, duplicates above all, ~1e-3·|x| apart, which decides a small eps. Stored in float32, a
distance within ~1e-7 (relative) of eps may still fall on the other side of it than in sklearn.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from clustersweep.stages.memo import keep_last

KEEP_BYTES = 2**31  # matrices up to 2 GiB (23k points) are kept between calls, the two used last
_kept: dict[bytes, Any] = {}  # matrices and upper triangles


def fits(n: int) -> bool:
    """Whether the n×n matrix is small enough to be kept."""
    return n * n * 4 <= KEEP_BYTES


def matrix(X: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """The n×n distances of the rows of X (computed in float64, stored in float32), kept for the next calls on the
    same points: a sweep keeps its fit's matrix and its metrics' upper triangle both."""
    return keep_last(_kept, (X,), "matrix", lambda: _matrix(np.asarray(X, dtype=np.float64), chunk), size=2)


def cluster_sums(X: np.ndarray, onehot: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """sums[i, k] = Σ distance(x_i, x_j) over the points j of cluster k (`onehot`: n × clusters, 0/1 weights).

    The matrix is symmetric, so only its upper part is computed and kept: per block of rows, the distances to
    those rows and every later one (a trapezoid), used as they are for the block's sums and transposed for the
    later rows'. Half the products and half the memory of the whole matrix; fresh memory is slow on this kind of
    machine (~2.5 s per GB of first touches on the notebook's VM).
    """
    X = np.asarray(X, dtype=np.float32)
    n = len(X)
    parts = keep_last(_kept, (X,), "upper", lambda: list(_upper(X, chunk, keep=True)), size=2) if fits(n) else None
    sums = np.zeros((n, onehot.shape[1]), dtype=np.float64)
    for start, stop, T in parts or _upper(X, chunk, keep=False):
        sums[start:stop] += T @ onehot[start:]
        sums[stop:] += T[:, stop - start :].T @ onehot[start:stop]
    return sums


def _upper(X: np.ndarray, chunk: int, keep: bool) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, stop, distances of rows start:stop to rows start:) for each block of rows; unless `keep`, each
    in one reused buffer."""
    n = len(X)
    A, B = _augmented(X)
    buf = None if keep else np.empty((min(chunk, n), n), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        out = np.empty((stop - start, n - start), dtype=np.float32) if keep else buf[: stop - start, : n - start]
        yield start, stop, _rows(A, B, start, stop, out, first=start)


def _matrix(X: np.ndarray, chunk: int) -> np.ndarray:
    n = len(X)
    A, B = _augmented(X)
    D = np.empty((n, n), dtype=np.float32)
    buf = np.empty((min(chunk, n), n), dtype=X.dtype)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        D[start:stop] = _rows(A, B, start, stop, buf[: stop - start])
    return D


def _rows(A: np.ndarray, B: np.ndarray, start: int, stop: int, out: np.ndarray, first: int = 0) -> np.ndarray:
    """Distances of rows start:stop to rows first:, written into `out`, from `_augmented` A and B."""
    np.matmul(A[start:stop], B[first:].T, out=out)
    np.maximum(out, 0.0, out=out)
    out[np.arange(stop - start), np.arange(start - first, stop - first)] = 0.0
    return np.sqrt(out, out=out)


def _augmented(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A, B with A_i · B_j = |x_i|² + |x_j|² − 2 x_i·x_j: one matrix product gives squared distances, with no
    passes over the n×n result to add the norms (the passes cost more than the product)."""
    sq = np.einsum("ij,ij->i", X, X)[:, None]
    ones = np.ones_like(sq)
    return np.hstack([-2.0 * X, sq, ones]), np.hstack([X, ones, sq])
