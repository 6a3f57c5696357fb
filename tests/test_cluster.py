import numpy as np
import pytest
from sklearn.cluster import DBSCAN, HDBSCAN, AgglomerativeClustering, KMeans
from sklearn.mixture import GaussianMixture

from clustersweep.stages import distances
from clustersweep.stages.cluster import NOISE, KDistanceDBSCAN, assign, dbscan, fit, knee, nearest_among


def test_kmeans_uses_predict():
    Z = np.array([[0.0], [0.1], [10.0], [10.1]])
    km = KMeans(2, n_init=1, random_state=0)
    labels = fit(km, Z)
    out = assign(km, Z, labels, np.array([[0.05], [9.9]]))
    assert out[0] == labels[0] and out[1] == labels[2]


def test_dbscan_takes_nearest_core_within_eps_else_noise():
    Z = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2], [20.0]])
    db = DBSCAN(eps=0.15, min_samples=3)
    labels = fit(db, Z)
    assert labels[-1] == NOISE
    out = assign(db, Z, labels, np.array([[0.22], [5.05], [2.5], [20.0]]))
    assert out[0] == labels[1] and out[1] == labels[4]
    assert out[2] == NOISE  # far from every core sample
    assert out[3] == NOISE  # a train noise point is no core sample


def test_no_predict_falls_back_to_nearest_train_point():
    Z = np.array([[0.0], [0.1], [10.0], [10.1]])
    agg = AgglomerativeClustering(2)
    labels = fit(agg, Z)
    assert list(assign(agg, Z, labels, np.array([[9.0], [1.0]]))) == [labels[2], labels[0]]


@pytest.mark.parametrize("share", [1.0, 0.3, 0.01])
def test_nearest_among_a_subset_equals_a_search_of_that_subset(share):
    """The shared neighbour lists give the same answer as searching the subset itself, also for queries none of
    whose kept neighbours are in it (few members: the fallback search)."""
    rng = np.random.RandomState(0)
    X, Q = rng.normal(size=(400, 3)), rng.normal(size=(150, 3))
    among = np.sort(rng.choice(len(X), max(1, int(share * len(X))), replace=False))
    dist, idx = nearest_among(X, among, Q)
    full = np.linalg.norm(Q[:, None, :] - X[among][None, :, :], axis=2)
    np.testing.assert_allclose(dist, full.min(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(idx, among[full.argmin(axis=1)])


def test_kdistance_dbscan_takes_eps_from_a_percentile_or_the_knee():
    rng = np.random.RandomState(0)
    Z = np.vstack([rng.normal(0, 0.1, (100, 2)), rng.normal(5, 0.1, (100, 2)), rng.uniform(-10, 15, (10, 2))])
    pct = KDistanceDBSCAN(eps_percentile=90, min_samples=5, random_state=0).fit(Z)
    assert pct.eps_ == pytest.approx(np.percentile(pct.kdist_, 90))
    assert len(pct.kdist_) == len(Z) and np.all(np.diff(pct.kdist_) >= 0)
    auto = KDistanceDBSCAN(eps="auto", min_samples=5).fit(Z)
    assert set(auto.labels_[:200]) == {0, 1}  # the knee separates the two blobs from the scattered points
    fixed = KDistanceDBSCAN(eps=0.3, min_samples=5).fit(Z)
    assert fixed.eps_ == 0.3 and list(assign(fixed, Z, fixed.labels_, np.array([[5.0, 5.0]]))) == [fixed.labels_[150]]


def _blobs_with_noise(seed: int) -> np.ndarray:
    rng = np.random.RandomState(seed)
    centers = rng.uniform(-6, 6, (4, 3))
    X = np.vstack([c + rng.normal(0, 0.4 + 0.3 * i, (120, 3)) for i, c in enumerate(centers)])
    X = np.vstack([X, rng.uniform(-9, 9, (60, 3)), X[:5]])  # scattered points, and duplicates
    return X.astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("min_samples", [1, 4, 12])
def test_dbscan_from_one_spanning_tree_equals_sklearn_at_every_eps(seed, min_samples):
    """Labels (numbering included, border points too) and core points equal sklearn's DBSCAN, from eps where
    no point is core to eps where all are one cluster, with the tree computed once for the sweep."""
    X = _blobs_with_noise(seed)
    for eps in (1e-3, 0.2, 0.35, 0.5, 0.8, 1.2, 2.0, 4.0, 30.0):
        ours, is_core = dbscan(X, eps, min_samples)
        theirs = DBSCAN(eps=eps, min_samples=min_samples).fit(X)
        np.testing.assert_array_equal(ours, theirs.labels_)
        np.testing.assert_array_equal(np.flatnonzero(is_core), theirs.core_sample_indices_)


def test_dbscan_with_more_min_samples_than_points_is_all_noise():
    labels, is_core = dbscan(np.arange(6, dtype=np.float32).reshape(3, 2), 100.0, 5)
    assert (labels == NOISE).all() and not is_core.any()


def test_kdistance_dbscan_past_the_kept_matrix_size_runs_sklearns(monkeypatch):
    X = _blobs_with_noise(3)
    shared = KDistanceDBSCAN(eps_percentile=90, min_samples=5, random_state=0).fit(X)
    monkeypatch.setattr(distances, "KEEP_BYTES", 0)
    alone = KDistanceDBSCAN(eps_percentile=90, min_samples=5, random_state=0).fit(X)
    assert shared.eps_ == alone.eps_ and len(set(alone.labels_)) > 2
    np.testing.assert_array_equal(shared.labels_, alone.labels_)
    np.testing.assert_array_equal(shared.core_sample_indices_, alone.core_sample_indices_)
    np.testing.assert_array_equal(shared.components_, alone.components_)


def test_knee_of_a_hockey_stick():
    curve = np.concatenate([np.linspace(0, 1, 90), np.linspace(1, 20, 10)])
    assert knee(curve) == pytest.approx(1.0, abs=0.3)


def test_hdbscan_test_points_take_their_nearest_fitted_points_label_noise_included():
    rng = np.random.RandomState(0)
    Z = np.vstack([rng.normal(0, 0.1, (30, 2)), rng.normal(5, 0.1, (30, 2)), [[20.0, 20.0]]])
    hdb = HDBSCAN(min_cluster_size=10, copy=True)
    labels = fit(hdb, Z)
    assert labels[-1] == NOISE and len(set(labels[:-1])) == 2
    out = assign(hdb, Z, labels, np.array([[0.05, 0.0], [5.0, 5.1], [19.0, 19.0]]))
    assert out.tolist() == [labels[0], labels[30], NOISE]


def test_gmm_uses_predict():
    Z = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
    gmm = GaussianMixture(2, random_state=0)
    labels = fit(gmm, Z)
    out = assign(gmm, Z, labels, np.array([[0.15], [9.9]]))
    assert out[0] == labels[0] and out[1] == labels[3]
