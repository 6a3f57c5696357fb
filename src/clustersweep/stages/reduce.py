"""The reducer stage: fit on train, transform both splits, and what a fitted reducer tells about itself."""

from __future__ import annotations

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.preprocessing import FunctionTransformer


def fit_transform(reducer: TransformerMixin, X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit on train only, so the test split is scored in a space it did not shape."""
    Z_train = reducer.fit_transform(X_train)
    return Z_train, reducer.transform(X_test)


def set_verbose(reducer: TransformerMixin, verbose: bool) -> None:
    """Whether the reducer's steps print their progress from now on (in the model too): a cached fit keeps the
    setting it was fitted with, which is not part of its cache key."""
    for step in [s for _, s in reducer.steps] if hasattr(reducer, "steps") else [reducer]:
        if isinstance(step.get_params(deep=False).get("verbose"), bool):
            step.set_params(verbose=verbose)


def explained_variance(reducer: TransformerMixin) -> float | None:
    """Cumulative explained-variance ratio at the fitted k; None for reducers without a spectrum."""
    evr = getattr(reducer, "explained_variance_ratio_", None)
    return None if evr is None else float(np.sum(evr))


def reconstruct(reducer: TransformerMixin, Z: np.ndarray) -> np.ndarray | None:
    """Map reduced points back to pixel space; None unless every step is linear (PCA, TruncatedSVD: a matrix
    product back) or the identity. UMAP's inverse_transform is a slow per-point optimization, not a reconstruction."""
    steps = [step for _, step in getattr(reducer, "steps", [("", reducer)])]
    if not all(hasattr(s, "components_") or isinstance(s, FunctionTransformer) for s in steps):
        return None
    inverse = getattr(reducer, "inverse_transform", None)
    if inverse is None:
        return None
    try:
        return np.asarray(inverse(Z))
    except (NotImplementedError, AttributeError):
        return None


def reconstruction_mse(reducer: TransformerMixin, X: np.ndarray, Z: np.ndarray) -> float | None:
    """Mean squared pixel error of X against its reconstruction from Z."""
    X_hat = reconstruct(reducer, Z)
    return None if X_hat is None else float(np.mean((X - X_hat) ** 2, dtype=np.float64))


def exact_bases(X: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """PCA's and TruncatedSVD's exact axes from one 784×784 Gram matrix: name → (mean, axes as rows, EVR).

    Uncentered, the eigenvectors of XᵀX are what TruncatedSVD approximates; centered, they are PCA's. Every k is
    a prefix of the one fit, so curves over k need no refitting.
    """
    mean = np.asarray(X).mean(axis=0, dtype=np.float64)
    n = len(X)
    Xc = np.asarray(X, dtype=np.float32) - mean.astype(np.float32)
    # centred before the float32 product (twice the BLAS speed of float64, and numpy's symmetric product): the
    # covariance keeps float32's precision whatever the data's offset; XᵀX = XcᵀXc + n·meanᵀmean, exactly
    cov = (Xc.T @ Xc).astype(np.float64) / n
    gram = n * (cov + np.outer(mean, mean))
    total = np.trace(cov)
    out = {}
    for name, matrix, centre in (("pca", cov, mean), ("svd", gram, np.zeros_like(mean))):
        _, vecs = np.linalg.eigh(matrix)
        axes = vecs[:, ::-1].T
        variance = np.sum((axes @ cov) * axes, axis=1)  # variance of X along each axis
        out[name] = (centre, axes, variance / total)
    return out


def prefix_reconstruct(X: np.ndarray, mean: np.ndarray, axes: np.ndarray, k: int) -> np.ndarray:
    """X projected on the first k axes and mapped back to pixels."""
    V = axes[:k]
    return mean + ((X - mean) @ V.T) @ V


def k95(evr: np.ndarray) -> int:
    """Components needed to explain 95% of the variance."""
    return int(np.searchsorted(np.cumsum(evr), 0.95) + 1)
