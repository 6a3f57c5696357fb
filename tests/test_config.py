"""Every config group composes; every bad value is refused before compute with a one-line message."""

import pytest
from hydra.utils import instantiate
from sklearn.base import BaseEstimator

from clustersweep.config import ConfigError, validate
from clustersweep.pipeline import run_name


@pytest.mark.parametrize("reducer", ["pca", "svd", "none"])
@pytest.mark.parametrize("clusterer", ["kmeans", "dbscan"])
def test_every_choice_composes_validates_and_builds_the_sklearn_class(make_cfg, reducer, clusterer):
    cfg = make_cfg(f"reducer={reducer}", f"clusterer={clusterer}")
    validate(cfg)
    est = instantiate(cfg.clusterer.estimator)
    assert isinstance(est, BaseEstimator) and isinstance(instantiate(cfg.reducer.estimator), BaseEstimator)


def test_defaults_are_the_notebook_settings(make_cfg):
    cfg = make_cfg(tiny=False)
    assert (cfg.dataset.name, cfg.seed) == ("fashion_mnist", 42)
    assert (cfg.reducer.k, cfg.reducer.whiten, cfg.clusterer.K, cfg.clusterer.n_init) == (100, True, 12, 10)
    assert cfg.tracking.experiment == "fashion-mnist"
    assert run_name(cfg) == "pca-k100-kmeans-K12"


def test_short_names_feed_the_estimator(make_cfg):
    cfg = make_cfg("reducer.k=5", "reducer.whiten=false", "clusterer.K=3", "seed=7")
    pca, km = instantiate(cfg.reducer.estimator), instantiate(cfg.clusterer.estimator)
    assert (pca.n_components, pca.whiten, pca.random_state) == (5, False, 7)
    assert (km.n_clusters, km.random_state) == (3, 7)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["reducer.k=0"], "reducer.k=0 is not allowed: expected an integer in 1..784"),
        (["reducer.k=785"], "reducer.k=785 is not allowed"),
        (["reducer=svd", "reducer.k=abc"], "reducer.k='abc' is not allowed"),
        (["clusterer.K=1"], "clusterer.K=1 is not allowed: expected an integer in 2..600"),
        (["clusterer.K=601"], "clusterer.K=601"),
        (["dataset.n_train=100", "clusterer.K=101"], "clusterer.K=101 is not allowed: expected an integer in 2..100"),
        (["clusterer.n_init=0"], "clusterer.n_init=0"),
        (["clusterer=dbscan", "clusterer.eps=0"], "clusterer.eps=0 is not allowed: expected a number > 0"),
        (["clusterer=dbscan", "clusterer.eps=-1.5"], "clusterer.eps=-1.5"),
        (["clusterer=dbscan", "clusterer.eps=wide"], "expected a number > 0 or 'auto'"),
        (["clusterer=dbscan", "clusterer.eps_percentile=0"], "expected null (all) or a percentile in (0, 100]"),
        (["clusterer.n_fit=1"], "clusterer.n_fit=1 is not allowed: expected null (all) or an integer ≥ 2"),
        (["clusterer=dbscan", "clusterer.min_samples=0"], "clusterer.min_samples=0 is not allowed"),
        (["dataset.n_train=-5"], "dataset.n_train=-5 is not allowed: expected null (all) or an integer in 4..600"),
        (["dataset.n_test=100000"], "dataset.n_test=100000"),
        (["seed=-1"], "seed=-1"),
        (["reducer.whiten=maybe"], "'whiten' parameter of PCA must be an instance of 'bool'"),
        (["+reducer.foo=1"], "reducer.foo=1 is not a parameter of reducer=pca: expected one of k, whiten"),
        (["+reducer.estimator.bar=2"], "unexpected keyword argument 'bar'"),
        (["metrics.silhouette_sample_size=1"], "metrics.silhouette_sample_size=1"),
    ],
)
def test_bad_values_give_one_line_naming_key_value_and_allowed(make_cfg, overrides, message):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*overrides))
    text = str(err.value)
    assert message in text
    assert "\n" not in text
