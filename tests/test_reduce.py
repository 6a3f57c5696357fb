import numpy as np
import pytest
from sklearn.decomposition import PCA, TruncatedSVD

from clustersweep.stages.reduce import exact_bases, explained_variance, prefix_reconstruct, reconstruction_mse


@pytest.fixture
def X():
    return (np.random.RandomState(0).rand(2000, 40) ** 3).astype(np.float32)


def test_exact_bases_match_sklearn_pca_and_svd_for_every_k_prefix(X):
    bases = exact_bases(X)
    for k in (5, 20):
        pca = PCA(k, svd_solver="full").fit(X)
        svd = TruncatedSVD(k, algorithm="arpack").fit(X)
        assert bases["pca"][2][:k] == pytest.approx(pca.explained_variance_ratio_, abs=1e-6)
        assert bases["svd"][2][:k] == pytest.approx(svd.explained_variance_ratio_, abs=1e-6)
        mean, axes, _ = bases["pca"]
        ours = np.mean((X - prefix_reconstruct(X, mean, axes, k)) ** 2)
        assert ours == pytest.approx(reconstruction_mse(pca, X, pca.transform(X)), rel=1e-4)
    assert bases["pca"][2].sum() == pytest.approx(1.0)


def test_reducers_without_spectrum_or_inverse_report_none(X):
    from sklearn.preprocessing import FunctionTransformer

    ident = FunctionTransformer().fit(X)
    assert explained_variance(ident) is None
    assert reconstruction_mse(ident, X, X) == 0.0
