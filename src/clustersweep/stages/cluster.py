"""The clusterer stage: fit on reduced train, then give every test point a cluster.

Estimators with `predict` (K-Means, GMM, …) use it. Density methods without one (DBSCAN) give a test
point the label of its nearest core sample when that sample lies within `eps` (DBSCAN's own
neighbourhood rule, distance ≤ eps), and noise (-1) otherwise. Any other estimator without `predict`
gives a test point the label of its nearest train point.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN
from sklearn.neighbors import NearestNeighbors
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from clustersweep.stages import distances
from clustersweep.stages.labels import NOISE, cluster_ids
from clustersweep.stages.memo import keep_last


def fit_rows(n_fit: int | None, n: int, seed: int) -> np.ndarray:
    """The train rows the clusterer is fitted on: all, or a seeded random subsample (`clusterer.n_fit`)."""
    if n_fit is None or n_fit >= n:
        return np.arange(n)
    return np.sort(np.random.RandomState(seed).choice(n, n_fit, replace=False))


def fit(clusterer: ClusterMixin, Z_train: np.ndarray) -> np.ndarray:
    """Fit and return the train labels."""
    return np.asarray(clusterer.fit_predict(Z_train))


def assign(clusterer: ClusterMixin, Z_fit: np.ndarray, fit_labels: np.ndarray, Z_test: np.ndarray) -> np.ndarray:
    """Cluster labels for test points (see the module docstring for the rule per kind of estimator)."""
    return predictor(clusterer, Z_fit, fit_labels).predict(Z_test)


def predictor(clusterer: ClusterMixin, Z_fit: np.ndarray, fit_labels: np.ndarray) -> ClusterMixin:
    """What gives new points a cluster: the fitted clusterer's own `predict`, or `NearestCluster` for one without
    (DBSCAN: nearest core sample within eps; others: nearest fitted point)."""
    if hasattr(clusterer, "predict"):
        return clusterer
    core = getattr(clusterer, "core_sample_indices_", None)
    radius = np.inf if core is None else float(getattr(clusterer, "eps_", clusterer.eps))
    return NearestCluster(radius).fit(Z_fit, fit_labels, core=core)


class NearestCluster(ClusterMixin, BaseEstimator):
    """A point takes the label of its nearest reference point within `radius`, else noise (-1): the rule for a
    clusterer without `predict`, as an estimator a pipeline can end with. `fit(X, labels, core)`: the fitted points
    (dense), their labels (cluster ids: whole numbers) and which of them are references (None: all). After fit:
    `X_`, `labels_`, `core_`, `n_features_in_`."""

    _parameter_constraints: dict = {"radius": [Interval(Real, 0.0, None, closed="both")]}  # inf: any distance

    def __init__(self, radius: float = np.inf) -> None:
        self.radius = radius

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True  # the labels of the points it is fitted on: it places points, finds none
        return tags

    def fit(self, X: np.ndarray, y: np.ndarray, core: np.ndarray | None = None) -> NearestCluster:
        self._validate_params()
        self.X_, labels = validate_data(self, X, y)
        self.labels_ = cluster_ids(labels, "the fitted points' labels (y)")
        self.core_ = np.arange(len(self.X_)) if core is None else np.asarray(core, dtype=np.intp)
        return self

    def fit_predict(self, X: np.ndarray, y: np.ndarray, core: np.ndarray | None = None) -> np.ndarray:
        return self.fit(X, y, core).labels_

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        Q = validate_data(self, X, reset=False)
        if len(self.core_) == 0:
            return np.full(len(Q), NOISE)
        dist, idx = nearest_among(self.X_, self.core_, Q)
        return np.where(dist <= self.radius, self.labels_[idx], NOISE)


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


_trees: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def dbscan(X: np.ndarray, eps: float, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's DBSCAN labels and core-point mask at eps, from one spanning tree that serves every eps on X.

    A point is core when its min_samples-th nearest point (itself first) lies within eps; two core points share a
    cluster when steps of at most eps join them through core points — exactly the components of the minimum
    spanning tree of the mutual reachability distances max(core_i, core_j, d_ij) cut at eps. Clusters are numbered
    in the order of their first core point, and a border point takes the lowest-numbered cluster with a core point
    within eps: the order in which sklearn's DBSCAN visits them. The tree and the distance matrix are kept, so an
    eps sweep computes them once (sklearn's DBSCAN searches every neighbourhood again for each eps).
    """
    D = distances.matrix(X)
    core, edges, weights = keep_last(_trees, (X,), [min_samples], lambda: _spanning_tree(D, min_samples))
    n = len(D)
    is_core = core <= eps
    labels = np.full(n, NOISE, dtype=np.intp)
    cores = np.flatnonzero(is_core)
    if len(cores) == 0:
        return labels, is_core
    joined = edges[weights <= eps]
    graph = coo_matrix((np.ones(len(joined), dtype=np.int8), (joined[:, 0], joined[:, 1])), shape=(n, n))
    component = connected_components(graph, directed=False)[1][cores]
    _, first, which = np.unique(component, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.intp)
    rank[np.argsort(first)] = np.arange(len(first))
    labels[cores] = rank[which]
    border = np.flatnonzero(~is_core)
    for start in range(0, len(border), 1024):
        rows = border[start : start + 1024]
        lowest = np.where(D[np.ix_(rows, cores)] <= eps, labels[cores], n).min(axis=1)
        labels[rows] = np.where(lowest < n, lowest, NOISE)
    return labels, is_core


def _spanning_tree(D: np.ndarray, min_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Core distances, and the minimum spanning tree's edges and weights over the mutual reachability distances
    (Prim's algorithm on the dense matrix: n steps of O(n) array work)."""
    n = len(D)
    core = np.full(n, np.inf, dtype=np.float32)  # more min_samples than points: none is core
    k = min_samples - 1  # its own distance, 0, comes first
    if k < n:
        for start in range(0, n, 1024):  # by row blocks: a block stays in cache, several times faster
            core[start : start + 1024] = np.partition(D[start : start + 1024], k, axis=1)[:, k]
    rest, rest_core = np.arange(1, n), core[1:].copy()  # points not yet in the tree, in any order
    best, via = np.full(n - 1, np.inf, dtype=np.float32), np.zeros(n - 1, dtype=np.intp)
    edges, weights = np.empty((n - 1, 2), dtype=np.intp), np.empty(n - 1, dtype=np.float32)
    v = 0
    for m in range(n - 1, 0, -1):  # m points left
        reach = D[v].take(rest[:m])
        np.maximum(reach, rest_core[:m], out=reach)
        np.maximum(reach, core[v], out=reach)
        closer = reach < best[:m]
        best[:m][closer], via[:m][closer] = reach[closer], v
        j = int(best[:m].argmin())
        v = int(rest[j])
        edges[n - 1 - m], weights[n - 1 - m] = (via[j], v), best[j]
        for a in (rest, rest_core, best, via):  # the last point left takes the place of the one joined
            a[j] = a[m - 1]
    return core, edges, weights


class KDistanceDBSCAN(ClusterMixin, BaseEstimator):
    """DBSCAN whose eps can come from the data: a percentile of the k-distance curve (the notebook's
    method) or its knee (eps='auto'); a number is used as given. After fit: `eps_` (used), `kdist_`
    (the curve), `n_features_in_`, and DBSCAN's `labels_`, `core_sample_indices_`, `components_`. Dense rows only.

    Up to 23k points (`distances.fits`) the labels come from `dbscan`, shared by every eps on the same points;
    above, from sklearn's DBSCAN (with `n_jobs`)."""

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
        X = validate_data(self, X)
        self.kdist_ = k_distances(X, self.min_samples, self.kdist_sample, self.random_state)
        if self.eps_percentile is not None:
            self.eps_ = float(np.percentile(self.kdist_, self.eps_percentile))
        elif self.eps == "auto":
            self.eps_ = knee(self.kdist_)
        else:
            self.eps_ = float(self.eps)
        eps = max(self.eps_, np.finfo(float).tiny)
        if distances.fits(len(X)):
            self.labels_, is_core = dbscan(X, eps, self.min_samples)
            self.core_sample_indices_ = np.flatnonzero(is_core)
            self.components_ = X[self.core_sample_indices_].copy()
        else:
            db = DBSCAN(eps=eps, min_samples=self.min_samples, n_jobs=self.n_jobs).fit(X)
            self.labels_, self.core_sample_indices_ = db.labels_, db.core_sample_indices_
            self.components_ = db.components_
        return self
