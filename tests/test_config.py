"""Every config group composes; every bad value is refused before compute with a one-line message."""

import pytest
from hydra.utils import instantiate
from sklearn.base import BaseEstimator

from clustersweep.config.names import run_name
from clustersweep.config.validate import validate
from clustersweep.data.dataset import load
from clustersweep.errors import ConfigError, DataError


@pytest.mark.parametrize(
    "reducer", ["pca", "svd", "none", "umap", "pca_umap", "patches_umap", "patches_multiscale_umap"]
)
@pytest.mark.parametrize("clusterer", ["kmeans", "dbscan", "gmm", "hdbscan", "agglomerative", "minibatch_kmeans"])
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
        (["clusterer.K=1"], "clusterer.K=1 is not allowed: expected an integer ≥ 2"),
        (["clusterer.K=601"], "clusterer.K=601"),
        (["dataset.n_train=100", "clusterer.K=101"], "clusterer.K=101 is not allowed: expected an integer in 2..100"),
        (["clusterer.n_init=0"], "clusterer.n_init=0"),
        (["clusterer=dbscan", "clusterer.eps=0"], "clusterer.eps=0 is not allowed: expected a number > 0"),
        (["clusterer=dbscan", "clusterer.eps=-1.5"], "clusterer.eps=-1.5"),
        (["clusterer=dbscan", "clusterer.eps=wide"], "expected a number > 0 or 'auto'"),
        (["clusterer=dbscan", "clusterer.eps_percentile=0"], "expected null (all) or a percentile in (0, 100]"),
        (["clusterer.n_fit=1"], "clusterer.n_fit=1 is not allowed: expected null (all) or an integer ≥ 2"),
        (["clusterer=dbscan", "clusterer.min_samples=0"], "clusterer.min_samples=0 is not allowed"),
        (["dataset.n_train=-5"], "dataset.n_train=-5 is not allowed: expected null (all) or an integer ≥ 4"),
        (["dataset.n_test=100000"], "dataset.n_test=100000"),
        (["seed=-1"], "seed=-1"),
        (["reducer.whiten=maybe"], "'whiten' parameter of PCA must be an instance of 'bool'"),
        (["+reducer.foo=1"], "reducer.foo=1 is not a parameter of reducer=pca: expected one of k, whiten"),
        (["+reducer.estimator.bar=2"], "unexpected keyword argument 'bar'"),
        (["metrics.silhouette_sample_size=1"], "metrics.silhouette_sample_size=1"),
        (
            ["metrics.modularity_sample_size=15"],
            "metrics.modularity_sample_size=15 is not allowed: expected an integer ≥ 16 (more than the graph's "
            "neighbours)",
        ),
        (["metrics.space=pixels"], "metrics.space='pixels' is not allowed: expected one of common, embedding"),
        (["metrics.common_k=0"], "metrics.common_k=0 is not allowed: expected an integer ≥ 1"),
        (["sweep.select_by=nmi"], "expected one of silhouette, davies_bouldin, calinski_harabasz, modularity, stab"),
        (["sweep.ace_index=ace"], "sweep.ace_index='ace' is not allowed: expected one of silhouette, davies_bouldin"),
        (["metrics.other_spaces=[pixels]"], "expected a list of distinct spaces out of common, embedding"),
        (["metrics.other_spaces=embedding"], "metrics.other_spaces='embedding' is not allowed: expected a list"),
        (["metrics.other_spaces=[common]"], "metrics.other_spaces=['common'] is not allowed: it holds metrics.space"),
        (["metrics.patches.pool=0"], "metrics.patches.pool=0 is not allowed: expected an integer ≥ 1"),
        (
            ["metrics.space=patches", "metrics.patches.patch=20", "metrics.patches.pool=10"],
            "metrics.patches (metrics.space=patches): The 'pool' parameter of PatchCodes must be at most 9 for 28×28",
        ),
        (
            ["dataset.image_shape=[28,28,3]", "metrics.other_spaces=[patches]"],
            "metrics.other_spaces=['patches'] is not allowed for dataset=synthetic: the patches space needs grey",
        ),
        (
            ["reducer=umap", "reducer.n_neighbors=1"],
            "reducer.n_neighbors=1 is not allowed: expected an integer ≥ 2",
        ),
        (["reducer=pca_umap", "reducer.min_dist=-0.1"], "reducer.min_dist=-0.1 is not allowed: expected a number ≥ 0"),
        (["reducer=pca_umap", "reducer.pca_k=0"], "reducer.pca_k=0 is not allowed"),
        (["reducer=pca_umap", "+reducer.foo=1"], "expected one of pca_k, k, n_neighbors, min_dist"),
        (
            ["reducer=patches_umap", "reducer.n_filters=1"],
            "reducer.n_filters=1 is not allowed: expected an integer ≥ 2",
        ),
        (["reducer=patches_umap", "reducer.patch=29"], "reducer.patch=29 is not allowed: expected an integer in 2..28"),
        (["reducer=patches_umap", "reducer.pool=0"], "reducer.pool=0 is not allowed: expected an integer ≥ 1"),
        (
            ["reducer=patches_umap", "reducer.patch=20", "reducer.pool=10"],
            "The 'pool' parameter of PatchCodes must be at most 9 for 28×28 images and 20×20 patches. Got 10",
        ),
        (
            ["reducer=patches_umap", "reducer.n_filters=8", "reducer.pool=2"],
            "reducer.pca_k=50 is not allowed: expected an integer in 1..32 (the patch features, n_filters·pool² per",
        ),
        (
            ["reducer=patches_multiscale_umap", "reducer.large_patch=20", "reducer.pool=10"],
            "The 'pool' parameter of PatchCodes must be at most 9 for 28×28 images and 20×20 patches. Got 10",
        ),  # a step inside the FeatureUnion is checked too
        (
            ["reducer=patches_multiscale_umap", "reducer.n_filters=4", "reducer.pool=2"],
            "reducer.pca_k=50 is not allowed: expected an integer in 1..32 (the patch features, n_filters·pool² per",
        ),
        (["consensus.K=1"], "consensus.K=1 is not allowed: expected null (the clusterer's K) or an integer ≥ 2"),
        (["clusterer=gmm", "clusterer.K=1"], "clusterer.K=1 is not allowed"),
        (["clusterer=gmm", "clusterer.covariance_type=round"], "'covariance_type' parameter of GaussianMixture"),
        (["clusterer=hdbscan", "clusterer.min_cluster_size=1"], "clusterer.min_cluster_size=1 is not allowed"),
        (["clusterer=hdbscan", "clusterer.min_samples=0"], "clusterer.min_samples=0 is not allowed"),
        (["clusterer=agglomerative", "clusterer.linkage=median"], "'linkage' parameter of AgglomerativeClustering"),
        (["clusterer=minibatch_kmeans", "clusterer.batch_size=0"], "clusterer.batch_size=0 is not allowed"),
    ],
)
def test_bad_values_give_one_line_naming_key_value_and_allowed(make_cfg, overrides, message):
    """As `prepare` checks a run: the config alone, then against the loaded data."""
    cfg = make_cfg(*overrides)
    with pytest.raises((ConfigError, DataError)) as err:
        validate(cfg)
        validate(cfg, load(cfg.dataset, cfg.seed))
    text = str(err.value)
    assert message in text
    assert "\n" not in text


def test_a_quadratic_clusterer_on_too_many_rows_is_refused(make_cfg):
    with pytest.raises(ConfigError, match="would fit every train row, expected at most 20000"):
        validate(make_cfg("clusterer=agglomerative", "clusterer.n_fit=null", tiny=False))
    validate(make_cfg("clusterer=agglomerative", tiny=False))  # its default subsample


def test_a_pipeline_reducer_feeds_its_short_keys_to_each_step(make_cfg):
    cfg = make_cfg("reducer=pca_umap", "reducer.pca_k=20", "reducer.k=3", "reducer.n_neighbors=7", "seed=5")
    pca, umap = (step for _, step in instantiate(cfg.reducer.estimator).steps)
    assert (pca.n_components, umap.n_components, umap.n_neighbors, umap.random_state) == (20, 3, 7, 5)
    assert (
        run_name(cfg)
        == "pca20-umap-k3-n7-d0.0-kmeans-K4-n_init2-metrics.silhouette_sample_size300-plots.scatter_points200-seed5"
    )  # every value its label does not show
    cfg = make_cfg("reducer=patches_umap", "reducer.n_filters=9", "reducer.patch=4", "reducer.pool=2", "seed=5")
    codes, _, pca, umap = (step for _, step in instantiate(cfg.reducer.estimator).steps)
    assert (codes.n_filters, codes.patch, codes.pool, codes.random_state, tuple(codes.image_shape)) == (
        9,
        4,
        2,
        5,
        (28, 28),
    )
    assert (pca.n_components, umap.n_neighbors, umap.random_state) == (50, 15, 5)
    cfg = make_cfg("reducer=patches_multiscale_umap", "reducer.n_filters=9", "reducer.large_patch=6", "seed=5")
    union = instantiate(cfg.reducer.estimator).steps[0][1]
    assert [(c.n_filters, c.patch, c.pool, c.random_state) for _, c in union.transformer_list] == [
        (9, 5, 3, 5),
        (9, 6, 3, 5),
    ]


def test_different_configurations_get_different_run_names(make_cfg):
    """Every value a label does not show, compactly; a resolved snapshot (a logged config.yaml) names the same."""
    from omegaconf import OmegaConf

    overrides = [[], ["seed=0"], ["dataset.n_train=5000"], ["reducer.estimator.svd_solver=covariance_eigh"]]
    names = [run_name(make_cfg(*o, tiny=False)) for o in overrides]
    assert names == [
        "pca-k100-kmeans-K12",
        "pca-k100-kmeans-K12-seed0",
        "pca-k100-kmeans-K12-n_train5000",
        "pca-k100-kmeans-K12-svd_solver=covariance_eigh",
    ]
    cfg = make_cfg("reducer.k=50", "metrics.space=embedding", "compute.threads=1", tiny=False)
    assert run_name(cfg) == "pca-k50-kmeans-K12-compute.threads1-metrics.space=embedding"  # k: shown by the label
    snapshot = OmegaConf.create(OmegaConf.to_yaml(cfg, resolve=True))
    assert run_name(snapshot) == run_name(cfg)
    assert run_name(make_cfg("tracking.experiment=other", "sweep.select_by=modularity", tiny=False)) == names[0]


def test_a_changed_list_is_named_once_as_a_whole(make_cfg):
    """`image_size=8x8`, not its elements by position; a list derived from it (`image_shape`) is not named."""
    cfg = make_cfg("dataset=synthetic", "dataset.image_size=[8,8]", tiny=False)
    assert run_name(cfg) == "pca-k100-kmeans-K12-image_size=8x8"
