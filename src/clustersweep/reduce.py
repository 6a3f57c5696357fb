"""The reducer stage: fit on train, transform both splits, and what a fitted reducer tells about itself."""

from __future__ import annotations

import numpy as np
from sklearn.base import TransformerMixin


def fit_transform(reducer: TransformerMixin, X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit on train only, so the test split is scored in a space it did not shape."""
    Z_train = reducer.fit_transform(X_train)
    return Z_train, reducer.transform(X_test)


def explained_variance(reducer: TransformerMixin) -> float | None:
    """Cumulative explained-variance ratio at the fitted k; None for reducers without a spectrum."""
    evr = getattr(reducer, "explained_variance_ratio_", None)
    return None if evr is None else float(np.sum(evr))


def reconstruct(reducer: TransformerMixin, Z: np.ndarray) -> np.ndarray | None:
    """Map reduced points back to pixel space (None when the reducer cannot invert)."""
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
