"""Scores of a clustering. Labels are used only to interpret quality, never to fit.

- `ari`, `nmi`: test labels vs test clusters (noise, -1, counts as one more cluster).
- `purity`: each cluster maps to its majority *train* label; the test accuracy of that mapping.
- `acc_hungarian`: the best one-to-one cluster→class mapping on test (the papers' clustering ACC).
  Noise points are never counted correct in either accuracy.
- Label-free, on the fitted train rows (noise left out) in the space the caller gives (`metrics.space`):
  `silhouette` (on a seeded sample of `sample_size` points; higher is better), `davies_bouldin` (lower is
  better), `calinski_harabasz` (higher is better) — all three reward compact, well-apart blobs — and
  `modularity` (on a seeded sample of its own size; higher is better), which asks instead whether clusters follow the
  neighbourhoods of the data, as neighbour-graph methods (UMAP, HDBSCAN) make them. In each of
  `metrics.other_spaces` too, logged as `<metric>.<space>`.
- Criteria that compare representations, where one space would favour the representation it came from:
  `stability`, the mean ARI between the partitions of a configuration's replicates (`sweep.replicates`: other seeds,
  so other embeddings, inits and subsamples) on the same test points (Ben-Hur, Elisseeff & Guyon 2002; Lange et
  al. 2004), and `ace`, a run's rank among the others by one internal index averaged over the spaces it was
  scored in (Wang & Ye 2024, arXiv 2403.14830): `report.tables.with_ace`.
A metric that is undefined for a run is left out and its reason returned, to be logged as a tag.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
)
from sklearn.neighbors import NearestNeighbors

from clustersweep.stages import distances, memo
from clustersweep.stages.labels import NOISE

LABEL_FREE = ("silhouette", "davies_bouldin", "calinski_harabasz", "modularity")  # may pick a run; labels never do
SPACES = ("common", "embedding", "patches")  # where the label-free metrics are computed: metrics.space, other_spaces
REPLICATED, RANKED = "stability", "ace"  # of a configuration's replicates; of a run among the others
CRITERIA = (*LABEL_FREE, REPLICATED, RANKED)  # every label-free choice of a run: sweep.select_by
NEIGHBOURS = 15  # modularity's graph: each point linked to its 15 nearest (UMAP's default neighbourhood)
NO_LABELS = "the dataset has no labels: ari, nmi, purity and acc_hungarian are not computed"
LOWER_IS_BETTER = {"inertia", "davies_bouldin", "reconstruction_mse", "noise_fraction"}


def is_cost(metric: str) -> bool:
    """What a run cost (`time_<stage>_s`, `size_model_bytes`), not what it found: it moves from run to run, so no
    comparison of results (reproduce.py, the launcher and Ray tests) counts it."""
    return metric.startswith(("time_", "size_"))


def lower_is_better(metric: str) -> bool:
    """The direction of a metric (also in another space: `davies_bouldin.embedding`): every choice of a best run or
    an objective's direction follows it."""
    return metric.split(".")[0] in LOWER_IS_BETTER


def direction(metric: str) -> str:
    """Optuna's name of a metric's direction: `minimize` where lower is better, else `maximize`."""
    return "minimize" if lower_is_better(metric) else "maximize"


def objectives(select_by: object) -> list[str]:
    """The objectives `sweep.select_by` names: one metric, or a list of them (a one-element list is that metric)."""
    return [str(select_by)] if isinstance(select_by, str) else [str(m) for m in select_by]


def objectives_name(select_by: object) -> str:
    """`sweep.select_by` as one word (a tag, a study's name): the metric, or the objectives joined by commas."""
    return ",".join(objectives(select_by))


def contingency(y: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of (class, cluster) pairs; returns (table, classes, clusters) with sorted axes."""
    classes, yi = np.unique(y, return_inverse=True)
    ks, ci = np.unique(clusters, return_inverse=True)
    table = np.zeros((len(classes), len(ks)), dtype=np.int64)
    np.add.at(table, (yi, ci), 1)
    return table, classes, ks


def purity(y_train: np.ndarray, train_clusters: np.ndarray, y_test: np.ndarray, test_clusters: np.ndarray) -> float:
    table, classes, ks = contingency(y_train, train_clusters)
    majority = dict(zip(ks.tolist(), classes[table.argmax(axis=0)].tolist(), strict=True))
    majority.pop(NOISE, None)
    pred = np.array([majority.get(int(c), NOISE - 1) for c in test_clusters])
    return float(np.mean(pred == y_test))


def acc_hungarian(y: np.ndarray, clusters: np.ndarray) -> float:
    table, _, ks = contingency(y, clusters)
    table = table[:, ks != NOISE]
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(y))


def _sample(points: np.ndarray, sample_size: int, seed: int) -> np.ndarray:
    """A seeded sample of `sample_size` of these point indices (all of them when there are fewer)."""
    if sample_size >= len(points):
        return points
    return points[np.random.RandomState(seed).permutation(len(points))[:sample_size]]


_graphs: dict[bytes, sparse.csr_matrix] = {}


def _knn_graph(X: np.ndarray, k: int) -> sparse.csr_matrix:
    """Symmetric 0/1 adjacency: i and j are linked when either is among the other's k nearest neighbours."""
    nearest = NearestNeighbors(n_neighbors=k).fit(X).kneighbors(return_distance=False)  # self left out
    rows = np.repeat(np.arange(len(X)), nearest.shape[1])
    a = sparse.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, nearest.ravel())), shape=(len(X), len(X)))
    return a.maximum(a.T).tocsr()


def modularity(X: np.ndarray, labels: np.ndarray, sample_size: int, seed: int, k: int = NEIGHBOURS) -> float:
    """Newman's modularity of the clusters on the k-nearest-neighbour graph of a seeded sample of X, noise points
    and their links left out: the share of the graph's links inside clusters, less the share expected by chance
    for clusters with those degrees. 1 is best; 0 is no better than chance. With no noise and the same size, the
    sample is the silhouette's. The graph depends only on the points, not the labels, so a sweep (K or eps)
    builds it once."""
    idx = _sample(np.arange(len(labels)), sample_size, seed)
    if len(idx) <= k:
        raise ValueError(f"modularity needs more than {k} points, got {len(idx)}")
    points = X[idx]
    graph = memo.keep_last(_graphs, (points,), k, lambda: _knn_graph(points, k))
    kept = labels[idx] != NOISE
    ks, li = np.unique(labels[idx][kept], return_inverse=True)
    if not 2 <= len(ks) <= np.count_nonzero(kept) - 1:
        raise ValueError(f"modularity needs 2..n-1 clusters, got {len(ks)} in {np.count_nonzero(kept)} points")
    graph = graph[kept][:, kept] if not kept.all() else graph
    if graph.nnz == 0:
        raise ValueError("modularity needs links between the clustered points, found none")
    rows, cols = graph.nonzero()
    ends = graph.nnz  # each link counted from both ends
    inside = np.count_nonzero(li[rows] == li[cols]) / ends
    degree = np.bincount(li, weights=np.diff(graph.indptr), minlength=len(ks)) / ends
    return float(inside - np.sum(degree**2))


def silhouette(X: np.ndarray, labels: np.ndarray, sample_size: int, seed: int, chunk: int = 2048) -> tuple[float, int]:
    """Mean silhouette of the points not labelled noise, on a seeded sample of them (the same sample as sklearn's
    silhouette_score on those points).

    Per-cluster distance sums come from matrix products (BLAS), not a per-row reduction. The distances (the upper
    triangle, `distances.cluster_sums`) are kept for the next call on the same points, so a K sweep pays for them
    once; when every non-noise point is used they are those of all of X with noise given no weight, so a DBSCAN
    eps sweep (other noise per eps) pays once too.
    Returns (score, points used).
    """
    kept = np.flatnonzero(labels != NOISE)
    idx = _sample(kept, sample_size, seed)
    ks, li = np.unique(labels[idx], return_inverse=True)
    if not 2 <= len(ks) <= len(idx) - 1:
        raise ValueError(f"silhouette needs 2..n-1 clusters, got {len(ks)} in {len(idx)} points")
    whole = len(idx) == len(kept) and distances.fits(len(X))
    base, rows = (X, idx) if whole else (X[idx], np.arange(len(idx)))
    onehot = np.zeros((len(base), len(ks)), dtype=np.float32)
    onehot[rows, li] = 1.0
    counts = onehot.sum(axis=0, dtype=np.float64)
    sums = distances.cluster_sums(base, onehot, chunk)[rows]
    own = counts[li]
    n = len(idx)
    a = sums[np.arange(n), li] / np.maximum(own - 1, 1)
    mean_other = sums / counts
    mean_other[np.arange(n), li] = np.inf
    b = mean_other.min(axis=1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), np.finfo(float).tiny), 0.0)
    return float(np.mean(s)), n


def stability(partitions: list[np.ndarray]) -> float:
    """Mean adjusted Rand index over every pair of these partitions of the same points: 1 when every replicate
    finds the same clusters, about 0 when they agree no more than chance. Noise (-1) counts as one more cluster."""
    if len(partitions) < 2:
        raise ValueError(f"stability needs the partitions of 2 or more replicates, got {len(partitions)}")
    if len({len(p) for p in partitions}) != 1:
        raise ValueError("stability needs partitions of the same points")
    pairs = [(i, j) for i in range(len(partitions)) for j in range(i + 1, len(partitions))]
    return float(np.mean([adjusted_rand_score(partitions[i], partitions[j]) for i, j in pairs]))


def degenerate(train_clusters: np.ndarray, max_noise: float, max_cluster_share: float) -> str | None:
    """Why a clustering of the fitted points is no clustering to interpret, or None: fewer than 2 clusters, more
    noise than `max_noise`, or one cluster holding more than `max_cluster_share` of the points."""
    ks, counts = np.unique(train_clusters[train_clusters != NOISE], return_counts=True)
    noise = float(np.mean(train_clusters == NOISE)) if len(train_clusters) else 1.0
    if len(ks) == 0:
        return "no cluster: every point is noise"
    if len(ks) == 1:
        return "one cluster" + (f" and {noise:.0%} noise" if noise else "")
    if noise > max_noise:
        return f"{noise:.0%} of the points are noise (metrics.max_noise={max_noise:g})"
    share = counts.max() / len(train_clusters)
    if share > max_cluster_share:
        top = int(ks[counts.argmax()])
        return f"cluster C{top} holds {share:.0%} of the points (metrics.max_cluster_share={max_cluster_share:g})"
    return None


def score(
    y_train: np.ndarray | None,
    train_clusters: np.ndarray,
    y_test: np.ndarray | None,
    test_clusters: np.ndarray,
    space: np.ndarray,
    silhouette_sample_size: int,
    modularity_sample_size: int,
    seed: int,
) -> tuple[dict[str, float], dict[str, str]]:
    """All label-based (when there are labels) and internal scores (those on `space`, the fitted train rows in the
    metric space); returns (metrics, {metric: why it was left out}; `labels` when there are none)."""
    found = train_clusters[train_clusters != NOISE]
    m: dict[str, float] = {"n_clusters": float(len(np.unique(found)))}
    skipped: dict[str, str] = {}
    if y_train is None or y_test is None:
        skipped["labels"] = NO_LABELS
    else:
        m["ari"] = float(adjusted_rand_score(y_test, test_clusters))
        m["nmi"] = float(normalized_mutual_info_score(y_test, test_clusters))
        m["purity"] = purity(y_train, train_clusters, y_test, test_clusters)
        m["acc_hungarian"] = acc_hungarian(y_test, test_clusters)
    if (train_clusters == NOISE).any():
        m["noise_fraction"] = float(np.mean(train_clusters == NOISE))
    inside, why = internal(train_clusters, space, silhouette_sample_size, modularity_sample_size, seed)
    return {**m, **inside}, {**skipped, **why}


def internal(
    train_clusters: np.ndarray, space: np.ndarray, silhouette_sample_size: int, modularity_sample_size: int, seed: int
) -> tuple[dict[str, float], dict[str, str]]:
    """The label-free scores (LABEL_FREE, and the silhouette's sample size) of the fitted train rows' clusters in
    `space`; returns (metrics, {metric: why it was left out})."""
    m: dict[str, float] = {}
    skipped: dict[str, str] = {}
    try:
        m["silhouette"], m["silhouette_n"] = silhouette(space, train_clusters, silhouette_sample_size, seed)
    except ValueError as e:
        skipped["silhouette"] = str(e)
    try:
        m["modularity"] = modularity(space, train_clusters, modularity_sample_size, seed)
    except ValueError as e:
        skipped["modularity"] = str(e)
    keep = train_clusters != NOISE
    X, labels = space[keep], train_clusters[keep]
    for name, index in (("davies_bouldin", davies_bouldin_score), ("calinski_harabasz", calinski_harabasz_score)):
        try:
            if not len(X):
                raise ValueError(f"{name} needs clustered points: every one of the {len(keep)} fitted points is noise")
            m[name] = float(index(X, labels))
        except ValueError as e:
            skipped[name] = str(e)
    return m, skipped
