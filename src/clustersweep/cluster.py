"""The clusterer stage: fit on reduced train, then give every test point a cluster.

Estimators with `predict` (K-Means, GMM, …) use it. Density methods without one (DBSCAN) give a test
point the label of its nearest core sample when that sample lies within `eps` (DBSCAN's own
neighbourhood rule, distance ≤ eps), and noise (-1) otherwise. Any other estimator without `predict`
gives a test point the label of its nearest train point.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN
from sklearn.neighbors import NearestNeighbors
from sklearn.utils._param_validation import Interval, StrOptions

from clustersweep.memo import keep_last

NOISE = -1


def fit(clusterer: ClusterMixin, Z_train: np.ndarray) -> np.ndarray:
    """Fit and return the train labels."""
    return np.asarray(clusterer.fit_predict(Z_train))


def assign(clusterer: ClusterMixin, Z_train: np.ndarray, train_labels: np.ndarray, Z_test: np.ndarray) -> np.ndarray:
    """Cluster labels for test points (see the module docstring for the rule per kind of estimator)."""
    if hasattr(clusterer, "predict"):
        return np.asarray(clusterer.predict(Z_test))
    core = getattr(clusterer, "core_sample_indices_", None)
    if core is None:
        core, radius = np.arange(len(Z_train)), np.inf
    else:
        radius = float(getattr(clusterer, "eps_", clusterer.eps))
    if len(core) == 0:
        return np.full(len(Z_test), NOISE)
    dist, idx = nearest_among(Z_train, core, Z_test)
    return np.where(dist <= radius, train_labels[idx], NOISE)


_NEIGHBOURS = 32
_knn: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}


def nearest_among(X: np.ndarray, among: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the distance to and index (in X) of its nearest row of X[among].

    The queries' nearest rows of all of X are kept for the next call on the same X and Q, so a DBSCAN eps sweep
    (other core samples per eps) or a K sweep of a method without predict searches once: a query's answer is
    the first of its neighbours that is in `among`; only queries with none of those do a search of their own.
    """
    search = NearestNeighbors(n_neighbors=min(_NEIGHBOURS, len(X))).fit
    dists, idxs = keep_last(_knn, (X, Q), None, lambda: search(X).kneighbors(Q))
    member = np.zeros(len(X), dtype=bool)
    member[among] = True
    hit = member[idxs]
    first = hit.argmax(axis=1)
    rows = np.arange(len(Q))
    dist, idx = dists[rows, first], idxs[rows, first]
    rest = np.flatnonzero(~hit.any(axis=1))
    if len(rest):
        d, i = NearestNeighbors(n_neighbors=1).fit(X[among]).kneighbors(Q[rest])
        dist[rest], idx[rest] = d[:, 0], among[i[:, 0]]
    return dist, idx


_kdist: dict[bytes, np.ndarray] = {}


def k_distances(X: np.ndarray, k: int, sample: int | None, seed: int | None) -> np.ndarray:
    """Sorted distance of each point (of a seeded sample) to its k-th nearest neighbour, itself counted first:
    DBSCAN's core condition with min_samples=k, and the notebook's k-distance curve. The last curve is kept, so
    an eps sweep on the same points computes it once."""
    return keep_last(_kdist, (X,), [k, sample, seed], lambda: _k_distances(X, k, sample, seed))


def _k_distances(X: np.ndarray, k: int, sample: int | None, seed: int | None) -> np.ndarray:
    if sample is not None and sample < len(X):
        X = X[np.random.RandomState(seed).permutation(len(X))[:sample]]
    dist, _ = NearestNeighbors(n_neighbors=min(k, len(X))).fit(X).kneighbors(X)
    return np.sort(dist[:, -1])


def knee(curve: np.ndarray) -> float:
    """The value where a sorted curve bends most: farthest from the chord between its ends (Kneedle)."""
    x = np.linspace(0.0, 1.0, len(curve))
    span = curve[-1] - curve[0]
    y = (curve - curve[0]) / span if span > 0 else np.zeros_like(curve)
    return float(curve[int(np.argmax(x - y))])


class KDistanceDBSCAN(ClusterMixin, BaseEstimator):
    """DBSCAN whose eps can come from the data: a percentile of the k-distance curve (the notebook's
    method) or its knee (eps='auto'); a number is used as given. After fit: `eps_` (used), `kdist_`
    (the curve), and DBSCAN's `labels_`, `core_sample_indices_`, `components_`."""

    _parameter_constraints: dict = {
        "eps": [Interval(Real, 0.0, None, closed="neither"), StrOptions({"auto"})],
        "eps_percentile": [Interval(Real, 0.0, 100.0, closed="right"), None],
        "min_samples": [Interval(Integral, 1, None, closed="left")],
        "kdist_sample": [Interval(Integral, 2, None, closed="left"), None],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        eps: float | str = 0.5,
        *,
        eps_percentile: float | None = None,
        min_samples: int = 5,
        kdist_sample: int | None = 10_000,
        n_jobs: int | None = None,
        random_state: int | None = None,
    ) -> None:
        self.eps = eps
        self.eps_percentile = eps_percentile
        self.min_samples = min_samples
        self.kdist_sample = kdist_sample
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: object = None) -> KDistanceDBSCAN:
        self._validate_params()
        self.kdist_ = k_distances(X, self.min_samples, self.kdist_sample, self.random_state)
        if self.eps_percentile is not None:
            self.eps_ = float(np.percentile(self.kdist_, self.eps_percentile))
        elif self.eps == "auto":
            self.eps_ = knee(self.kdist_)
        else:
            self.eps_ = float(self.eps)
        db = DBSCAN(eps=max(self.eps_, np.finfo(float).tiny), min_samples=self.min_samples, n_jobs=self.n_jobs).fit(X)
        self.labels_, self.core_sample_indices_, self.components_ = db.labels_, db.core_sample_indices_, db.components_
        return self
