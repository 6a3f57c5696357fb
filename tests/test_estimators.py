"""The project's estimators by scikit-learn's contract: its own `check_estimator` checks on each (a check that cannot
apply is listed with its reason), cluster ids that are whole numbers, NotFittedError before fit, sparse rows taken
by the model and refused in one line by the rest, and the model's message for rows it cannot take."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from clustersweep.stages.cluster import KDistanceDBSCAN, NearestCluster
from clustersweep.stages.consensus import BipartiteConsensus
from clustersweep.stages.features import PatchCodes
from clustersweep.stages.model import ClusterPipeline, ConsensusPipeline, InputError, assemble


def _pipeline(seed: int = 0) -> ClusterPipeline:
    return ClusterPipeline([("pca", PCA(1)), ("cluster", KMeans(2, n_init=1, random_state=seed))])


ESTIMATORS = [
    BipartiteConsensus(2),
    KDistanceDBSCAN(),
    NearestCluster(),
    PatchCodes(image_shape=(2, 2), n_filters=2, patch=2, pool=1, n_patches=10),
    _pipeline(),
    ConsensusPipeline([_pipeline(0), _pipeline(1)], BipartiteConsensus(2, random_state=0)),
]

IN_PLACE = "it fits its steps in place, as scikit-learn's Pipeline, which its own tests expect to fail this check"
OWN_WORDS = "a wrong width is refused in the model's words (`expected rows of 4 values, got 1`: tested below)"
IMAGES = "its rows are images of image_shape (2×2 = 4 pixels here): the check's rows of another width are refused"
EXPECTED_FAILURES = {
    BipartiteConsensus: {"check_clustering": "its input is cluster ids (whole numbers), not the check's points"},
    NearestCluster: {"check_clustering": "fit takes the fitted points' labels (y): it places points, finds none"},
    PatchCodes: dict.fromkeys(
        [
            "check_fit_score_takes_y",
            "check_estimators_overwrite_params",
            "check_dont_overwrite_parameters",
            "check_estimators_fit_returns_self",
            "check_readonly_memmap_input",
            "check_estimators_dtypes",
            "check_dtype_object",
            "check_pipeline_consistency",
            "check_estimators_nan_inf",
            "check_estimators_pickle",
            "check_f_contiguous_array_estimator",
            "check_transformer_data_not_an_array",
            "check_transformer_general",
            "check_transformer_preserve_dtypes",
            "check_methods_sample_order_invariance",
            "check_methods_subset_invariance",
            "check_fit2d_1sample",
            "check_fit2d_1feature",
            "check_dict_unchanged",
            "check_fit_idempotent",
            "check_fit_check_is_fitted",
            "check_n_features_in",
            "check_fit2d_predict1d",
        ],
        IMAGES,
    ),
    ClusterPipeline: {
        "check_estimators_overwrite_params": IN_PLACE,
        "check_dont_overwrite_parameters": IN_PLACE,
        "check_n_features_in_after_fitting": OWN_WORDS,
    },
    ConsensusPipeline: {
        "check_estimators_overwrite_params": IN_PLACE,
        "check_n_features_in_after_fitting": OWN_WORDS,
    },
}


@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=lambda e: EXPECTED_FAILURES.get(type(e), {}), xfail_strict=True
)
def test_scikit_learns_checks(estimator, check):
    check(estimator)


def test_a_cluster_id_is_a_whole_number():
    """1.0 is 1; 1.5 is refused in one line, not truncated to 1."""
    ids = np.array([[0, 1], [0, 1], [1, 0], [1, 0], [2, 2]])
    as_ints = BipartiteConsensus(2, random_state=0).fit(ids)
    as_floats = BipartiteConsensus(2, random_state=0).fit(ids.astype(float))
    assert np.array_equal(as_ints.labels_, as_floats.labels_) and np.array_equal(
        as_ints.predict(ids), as_floats.predict(ids.astype(float))
    )
    half = ids.astype(float)
    half[2, 1] = 1.5
    for refused in (lambda: BipartiteConsensus(2).fit(half), lambda: as_ints.predict(half)):
        with pytest.raises(ValueError) as e:
            refused()
        assert str(e.value) == "the members' clusters must be whole numbers (cluster ids, -1 for noise), got 1.5"
    X = np.arange(10.0).reshape(5, 2)
    assert NearestCluster().fit(X, [0, 0, 1.0, 1, -1]).labels_.dtype == np.int64
    with pytest.raises(ValueError, match=r"^the fitted points' labels \(y\) must be whole numbers .*got 0.5$"):
        NearestCluster().fit(X, [0, 0.5, 1, 1, 1])


def _model(image_shape: tuple[int, ...] | None = (4, 4)) -> tuple[ClusterPipeline, np.ndarray]:
    """A fitted model of 16-value rows, as a run assembles it, and its rows."""
    X = np.random.default_rng(0).random((60, 16), dtype=np.float32)
    pca = PCA(3).fit(X)
    kmeans = KMeans(3, n_init=1, random_state=0).fit(pca.transform(X))
    return assemble(pca, kmeans, 1, 16, image_shape, (0.0, 1.0)), X


def test_nothing_predicts_before_fit():
    X = np.zeros((3, 4))
    for unfitted in (NearestCluster().predict, BipartiteConsensus().predict, PatchCodes((2, 2)).transform):
        with pytest.raises(NotFittedError):
            unfitted(X)
    for pipeline in (_pipeline(), ConsensusPipeline([_pipeline(0), _pipeline(1)], BipartiteConsensus(2))):
        with pytest.raises(NotFittedError):
            pipeline.predict(X)
    fitted, rows = _model()
    assert fitted.n_features_in_ == 16
    consensus = ConsensusPipeline([fitted, _model()[0]], BipartiteConsensus(2, random_state=0)).fit(rows)
    assert consensus.n_features_in_ == 16 and len(consensus.labels_) == 60


def test_the_model_takes_sparse_rows_as_dense_and_the_other_estimators_refuse_them_in_one_line():
    model, X = _model()
    dense = model.predict(X)
    for given in (
        sparse.csr_matrix(X),
        sparse.csr_array(X),
        pd.DataFrame(X),
        X.astype(np.float64),
        X.reshape(-1, 4, 4),
    ):
        assert np.array_equal(model.predict(given), dense)
    refit = _pipeline().fit(sparse.csr_matrix(X))  # fit takes them too, and agrees with predict
    assert np.array_equal(refit.predict(sparse.csr_matrix(X)), refit.predict(X)) and refit.n_features_in_ == 16
    consensus = ConsensusPipeline([_pipeline(0), _pipeline(1)], BipartiteConsensus(2, random_state=0))
    assert np.array_equal(consensus.fit(sparse.csr_matrix(X)).labels_, consensus.predict(X))
    ids = sparse.csr_matrix(np.array([[0, 1], [1, 0], [1, 1]]))
    for fit in (
        lambda: KDistanceDBSCAN().fit(sparse.csr_matrix(X)),
        lambda: NearestCluster().fit(sparse.csr_matrix(X), np.zeros(60)),
        lambda: PatchCodes((4, 4), n_filters=2, patch=2, n_patches=10).fit(sparse.csr_matrix(X)),
        lambda: BipartiteConsensus(2).fit(ids),
    ):
        with pytest.raises(TypeError) as e:
            fit()
        said = str(e.value)
        assert said.startswith("Sparse data was passed for X, but dense data is required") and "\n" not in said


@pytest.mark.parametrize(
    "rows, said",
    [
        (np.zeros((2, 12)), "expected rows of 16 values (4x4 images), got 12"),
        (pd.DataFrame(np.zeros((1, 12))), "expected rows of 16 values (4x4 images), got 12"),
        (np.zeros(16), "expected rows of 16 values (4x4 images), got an array of shape (16,). Reshape your data"),
        (np.full((1, 16), "a"), "expected rows of 16 values (4x4 images) that are numbers (read as float32): could"),
        (np.full((1, 16), np.nan), "expected rows of 16 values (4x4 images) that are numbers (read as float32): Input"),
    ],
    ids=["width", "dataframe", "1-D", "strings", "NaN"],
)
def test_rows_the_model_cannot_take_are_one_line_saying_what_it_takes(rows, said):
    model, _ = _model()
    consensus = ConsensusPipeline([model, _model()[0]], BipartiteConsensus(2, random_state=0)).fit(_model()[1])
    for predict in (model.predict, consensus.predict):
        with pytest.raises(InputError) as e:
            predict(rows)
        assert str(e.value).startswith(said) and "\n" not in str(e.value), str(e.value)
        assert isinstance(e.value, ValueError) and e.value.get_http_status_code() == 400
    with pytest.raises(InputError, match=r"^expected rows of 16 values, got 12$"):
        _model(image_shape=None)[0].predict(np.zeros((2, 12)))
