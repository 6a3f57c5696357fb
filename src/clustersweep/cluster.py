"""The clusterer stage: fit on reduced train, then give every test point a cluster.

Estimators with `predict` (K-Means, GMM, …) use it. Density methods without one (DBSCAN) give a test
point the label of its nearest core sample when that sample lies within `eps` (DBSCAN's own
neighbourhood rule, distance ≤ eps), and noise (-1) otherwise. Any other estimator without `predict`
gives a test point the label of its nearest train point.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import ClusterMixin
from sklearn.neighbors import NearestNeighbors

NOISE = -1


def fit(clusterer: ClusterMixin, Z_train: np.ndarray) -> np.ndarray:
    """Fit and return the train labels."""
    return np.asarray(clusterer.fit_predict(Z_train))


def assign(clusterer: ClusterMixin, Z_train: np.ndarray, train_labels: np.ndarray, Z_test: np.ndarray) -> np.ndarray:
    """Cluster labels for test points (see the module docstring for the rule per kind of estimator)."""
    if hasattr(clusterer, "predict"):
        return np.asarray(clusterer.predict(Z_test))
    core = getattr(clusterer, "core_sample_indices_", None)
    if core is not None:
        ref, radius = Z_train[core], float(clusterer.eps)
        ref_labels = train_labels[core]
    else:
        ref, radius, ref_labels = Z_train, np.inf, train_labels
    if len(ref) == 0:
        return np.full(len(Z_test), NOISE)
    dist, idx = NearestNeighbors(n_neighbors=1).fit(ref).kneighbors(Z_test)
    return np.where(dist[:, 0] <= radius, ref_labels[idx[:, 0]], NOISE)
