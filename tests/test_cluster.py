import numpy as np
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans

from clustersweep.cluster import NOISE, assign, fit


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
