import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, silhouette_score

from clustersweep.stages.metrics import (
    NOISE,
    acc_hungarian,
    internal,
    modularity,
    purity,
    score,
    silhouette,
    stability,
)


def test_silhouette_equals_sklearn_on_the_same_sample():
    X, y = make_blobs(1500, 12, centers=5, random_state=0)
    ours, n = silhouette(X, y, 700, seed=3, chunk=128)
    assert n == 700
    assert ours == pytest.approx(silhouette_score(X, y, sample_size=700, random_state=3), abs=1e-5)


def test_silhouette_whole_set_and_singletons():
    X, y = make_blobs(200, 4, centers=3, random_state=1)
    y[0] = 99  # a singleton cluster scores 0, as in sklearn
    ours, n = silhouette(X, y, 10_000, seed=0)
    assert n == 200
    assert ours == pytest.approx(silhouette_score(X, y), abs=1e-5)


def test_silhouette_undefined_for_one_cluster():
    with pytest.raises(ValueError, match="2..n-1 clusters"):
        silhouette(np.zeros((10, 2)), np.zeros(10, int), 100, seed=0)


def test_purity_maps_clusters_by_train_majority():
    y_train = np.array([0, 0, 1, 1, 1, 2])
    c_train = np.array([5, 5, 7, 7, 5, 9])
    y_test = np.array([0, 1, 2, 1])
    c_test = np.array([5, 7, 7, -1])  # 5→0 right, 7→1 right, 7→1 wrong, noise never right
    assert purity(y_train, c_train, y_test, c_test) == pytest.approx(0.5)


def test_hungarian_is_one_to_one():
    y = np.array([0, 0, 0, 1, 1, 2])
    c = np.array([3, 3, 3, 3, 3, 4])  # cluster 3 can only stand for one class
    assert acc_hungarian(y, c) == pytest.approx(4 / 6)


def test_score_leaves_out_silhouette_with_a_reason_when_all_noise():
    y = np.array([0, 1, 0, 1])
    noise = np.full(4, -1)
    m, skipped = score(y, noise, y, noise, np.random.rand(4, 2), 100, 100, 0)
    assert "silhouette" not in m and "silhouette" in skipped and "modularity" in skipped
    assert m["noise_fraction"] == 1.0 and m["n_clusters"] == 0
    said = "davies_bouldin needs clustered points: every one of the 4 fitted points is noise"
    assert skipped["davies_bouldin"] == said and "calinski_harabasz" in skipped


def test_silhouette_kept_and_chunked_paths_agree(monkeypatch):
    from clustersweep.stages import distances

    X, y = make_blobs(900, 6, centers=4, random_state=2)
    kept, _ = silhouette(X, y, 800, seed=1, chunk=300)
    again, _ = silhouette(X, (y + 1) % 4, 800, seed=1, chunk=300)  # same points: the kept matrix serves other labels
    monkeypatch.setattr(distances, "KEEP_BYTES", 0)
    chunked, _ = silhouette(X, y, 800, seed=1, chunk=100)
    assert kept == pytest.approx(chunked, abs=1e-6) and again == pytest.approx(kept, abs=1e-6)


def test_silhouette_leaves_noise_out_with_one_matrix_for_every_noise_pattern():
    from clustersweep.stages import distances

    distances._kept.clear()
    X, y = make_blobs(600, 5, centers=3, random_state=4)
    for noisy in ((y == 0) & (np.arange(600) % 3 == 0), np.arange(600) % 7 == 0):  # two eps of one DBSCAN sweep
        ours, n = silhouette(X, np.where(noisy, -1, y), 10_000, seed=0)
        assert n == (~noisy).sum() and ours == pytest.approx(silhouette_score(X[~noisy], y[~noisy]), abs=1e-5)
        kept = [[T.shape for _, _, T in parts] for parts in distances._kept.values()]
        assert kept == [[(600, 600)]]  # all of X, noise given no weight


def test_modularity_is_newmans_on_the_symmetric_knn_graph_of_the_sample():
    X, y = make_blobs(400, 6, centers=4, cluster_std=2.5, random_state=2)
    y[::9] = NOISE
    got = modularity(X, y, 300, seed=5, k=7)
    idx = np.random.RandomState(5).permutation(400)[:300]  # a sample of all points: the graph ignores the labels
    Xs, ys = X[idx], y[idx]
    d = ((Xs[:, None, :] - Xs[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, axis=1)[:, :7]
    A = np.zeros((300, 300))
    A[np.repeat(np.arange(300), 7), near.ravel()] = 1
    A = np.maximum(A, A.T)  # linked when either is among the other's 7 nearest
    kept = ys != NOISE
    A, ys = A[kept][:, kept], ys[kept]  # noise points and their links left out
    deg, two_m = A.sum(1), A.sum()
    same = ys[:, None] == ys[None, :]
    assert got == pytest.approx(((A - np.outer(deg, deg) / two_m) * same).sum() / two_m, abs=1e-12)
    assert 0.4 < got < 0.75  # four blobs found: far above chance
    assert modularity(X, np.random.default_rng(0).permutation(y), 300, seed=5, k=7) < 0.05  # shuffled: chance


def test_modularity_undefined_for_one_cluster_or_too_few_points():
    with pytest.raises(ValueError, match="modularity needs 2..n-1 clusters"):
        modularity(np.random.rand(50, 2), np.zeros(50, dtype=int), 100, seed=0)
    with pytest.raises(ValueError, match="modularity needs more than 15 points"):
        modularity(np.random.rand(10, 2), np.arange(10) % 2, 100, seed=0)


def test_modularity_builds_one_graph_for_every_noise_pattern(monkeypatch):
    from clustersweep.stages import metrics

    X, y = make_blobs(300, 5, centers=3, random_state=4)
    built = []
    real = metrics._knn_graph
    monkeypatch.setattr(metrics, "_knn_graph", lambda *a: built.append(1) or real(*a))
    metrics._graphs.clear()
    for noisy in (0, 3, 7):  # an eps sweep: other points are noise at each eps
        labels = y.copy()
        if noisy:
            labels[::noisy] = NOISE
        modularity(X, labels, 10_000, seed=0)
    assert len(built) == 1


def _representations(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """600 points in two representations: `held` has 4 well-apart blobs, `noise` the same points as Gaussian noise;
    and `pixels`, both side by side (the space every run can be scored in)."""
    held, _ = make_blobs(600, n_features=5, centers=4, cluster_std=0.6, random_state=seed)
    noise = np.random.default_rng(seed).normal(size=(600, 5)) * held.std()
    return held, noise, np.hstack([held, noise])


def _partitions(X: np.ndarray, seeds: range) -> list[np.ndarray]:
    """K-Means K=4 fitted with one init per seed on a seeded 80% subsample, every point then assigned."""
    from sklearn.cluster import KMeans

    parts = []
    for s in seeds:
        rows = np.random.default_rng(s).permutation(len(X))[: int(0.8 * len(X))]
        parts.append(KMeans(4, n_init=1, random_state=s).fit(X[rows]).predict(X))
    return parts


def test_stability_is_the_mean_pairwise_ari_and_needs_two_partitions_of_the_same_points():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert stability([a, a + 5, np.array([2, 2, 0, 0, 1, 1])]) == 1.0  # the same partition, named otherwise
    b = np.array([0, 1, 0, 1, 0, 1])
    pairs = [adjusted_rand_score(a, a), adjusted_rand_score(a, b), adjusted_rand_score(a, b)]
    assert stability([a, a, b]) == pytest.approx(np.mean(pairs))
    with pytest.raises(ValueError, match="2 or more replicates"):
        stability([a])
    with pytest.raises(ValueError, match="the same points"):
        stability([a, a[:4]])


def test_stability_prefers_the_representation_that_holds_the_clusters():
    held, noise, _ = _representations()
    kept, lost = stability(_partitions(held, range(5))), stability(_partitions(noise, range(5)))
    assert kept > 0.99 and lost < 0.6, (kept, lost)


def test_ace_ranks_the_representation_that_holds_the_clusters_first():
    """Each representation's K-Means (K = 3, 4, 5) scored in its own space and in the common one (both side by
    side): ranked over the two spaces, every clustering of the representation that holds the clusters comes before
    every clustering of the noise, the right K first."""
    import pandas as pd
    from sklearn.cluster import KMeans

    from clustersweep.report.tables import with_ace

    held, noise, both = _representations()
    rows = []
    for name, own in (("held", held), ("noise", noise)):
        for K in (3, 4, 5):
            clusters = KMeans(K, n_init=4, random_state=0).fit_predict(own)
            mine, _ = internal(clusters, own, 600, 600, 0)
            common, _ = internal(clusters, both, 600, 600, 0)
            rows.append(
                {
                    "run_id": f"{name}-K{K}",
                    "status": "FINISHED",
                    "metrics.space": "embedding",
                    "modularity": mine["modularity"],
                    "modularity.common": common["modularity"],
                }
            )
    df = with_ace(pd.DataFrame(rows), "modularity")
    assert df.set_index("run_id").ace.idxmax() == "held-K4"
    assert df[df.run_id.str.startswith("held")].ace.min() > df[df.run_id.str.startswith("noise")].ace.max()
    assert df.ace.max() == 1.0  # first in both spaces
