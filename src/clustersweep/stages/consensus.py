"""Consensus clustering: one partition from several partitions of the same rows (`consensus.members`).

Each member is the run's pipeline fitted with a seed of its own (its own embedding, initialisation and subsample):
the partitions agree where the structure is clear and differ where it is not. `BipartiteConsensus` combines them
by Fern & Brodley's hybrid bipartite graph (HBGF, ICML 2004): rows and the members' clusters are the two sides of
a graph, a row joined to the cluster each member put it in; the graph is cut by spectral clustering. Two rows end
up together when the members mostly put them together, and a cluster that members split differently is cut where
they agree most. New rows are placed by the same projection, from their members' clusters alone.

Fern & Brodley, "Solving Cluster Ensemble Problems by Bipartite Graph Partitioning", ICML 2004.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from clustersweep.stages.labels import NOISE, cluster_ids


class BipartiteConsensus(ClusterMixin, BaseEstimator):
    """`fit(labels)`: labels is (n rows, m members) of cluster ids, -1 for noise: whole numbers (1.0 is 1; 1.5 is
    refused), dense. After fit: `labels_` (the consensus, -1 for a row every member called noise), `clusters_` (each
    member's cluster ids), `projection_` (member clusters → spectral coordinates), `kmeans_`, `n_features_in_` (m).
    `predict(labels)` places rows of the same members' cluster ids; a cluster id a member did not have when fitted
    counts as noise."""

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_clusters: int = 8, n_init: int = 10, random_state: int | None = None) -> None:
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.random_state = random_state

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True  # cluster ids (scikit-learn's checks then give it whole numbers)
        return tags

    def fit(self, X: np.ndarray, y: None = None) -> BipartiteConsensus:
        self._validate_params()
        labels = cluster_ids(validate_data(self, X), "the members' clusters")
        self.clusters_ = [np.unique(col[col != NOISE]) for col in labels.T]
        A = self._incidence(labels)
        sizes = A.sum(axis=0)
        if np.count_nonzero(sizes) < self.n_clusters:
            raise ValueError(
                f"the members have {np.count_nonzero(sizes)} clusters between them, fewer than n_clusters="
                f"{self.n_clusters}"
            )
        B = A / np.sqrt(np.maximum(A.sum(axis=1, keepdims=True), 1))  # rows normalized by their degree …
        B /= np.sqrt(np.maximum(sizes, 1))  # … and clusters by theirs
        # B's leading right singular vectors, from the small (clusters × clusters) matrix BᵀB
        eigval, eigvec = np.linalg.eigh(B.T @ B)
        top = np.argsort(eigval)[::-1][: self.n_clusters]
        sigma = np.sqrt(np.maximum(eigval[top], np.finfo(float).tiny))
        self.projection_ = eigvec[:, top] / np.sqrt(np.maximum(sizes, 1))[:, None] / sigma
        U, known = self._embed(labels)
        self.kmeans_ = KMeans(self.n_clusters, n_init=self.n_init, random_state=self.random_state).fit(U[known])
        self.labels_ = np.full(len(labels), NOISE)
        self.labels_[known] = self.kmeans_.labels_
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        labels = cluster_ids(validate_data(self, X, reset=False), "the members' clusters")
        out = np.full(len(labels), NOISE)
        U, known = self._embed(labels)
        if known.any():
            out[known] = self.kmeans_.predict(U[known])
        return out

    def _incidence(self, labels: np.ndarray) -> np.ndarray:
        """One column per member cluster: 1 where the row is in it (noise and unknown clusters: no column)."""
        cols = []
        for col, known in zip(labels.T, self.clusters_, strict=True):
            cols.append((col[:, None] == known[None, :]).astype(np.float64))
        return np.hstack(cols) if cols else np.zeros((len(labels), 0))

    def _embed(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows in the spectral coordinates, each scaled to unit length (Ng, Jordan & Weiss: a row's direction
        says which clusters it belongs with), and which rows some member put in a cluster it knows."""
        A = self._incidence(labels)
        degree = A.sum(axis=1, keepdims=True)
        U = A / np.sqrt(np.maximum(degree, 1)) @ self.projection_
        norms = np.linalg.norm(U, axis=1, keepdims=True)
        return np.divide(U, norms, out=np.zeros_like(U), where=norms > 0), degree[:, 0] > 0
