"""The fitted pipeline a run logs as its MLflow model: the reducer's steps, then the clusterer — or, for a clusterer
without `predict` (DBSCAN, HDBSCAN, agglomerative), the rule the run assigns its test set by
(`cluster.NearestCluster`) — so that `predict` maps raw rows to the cluster ids the run would give them. A consensus
run (`consensus.members`) logs `ConsensusPipeline`: every member's pipeline, then the rule that combines them."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from scipy import sparse
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted
from threadpoolctl import threadpool_limits

# What unpickling the model needs (clustersweep itself too: its own estimators are in it).
REQUIREMENTS = ("scikit-learn", "numpy", "scipy", "threadpoolctl", "cloudpickle")
log = logging.getLogger(__name__)


class InputError(MlflowException, ValueError):
    """Rows the model cannot take, saying what it takes: a ValueError, as scikit-learn's own, and an MlflowException
    (INVALID_PARAMETER_VALUE), whose message MLflow's scoring server (`mlflow models serve`) puts in its HTTP 400
    answer; of any other error it answers only that one occurred."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class ClusterPipeline(Pipeline):
    """A scikit-learn Pipeline whose `predict` runs on `threads` BLAS/OpenMP threads, as the run did
    (`compute.threads`), and reads its input as the run's data: float32 rows, dense. It takes an ndarray, a DataFrame
    (what MLflow's pyfunc passes), a list of rows, a scipy sparse matrix or `(n, *image_shape_)` images, and reads
    them so in every method (`fit`, `transform`, `score` too); rows of another width, or not numbers, are an
    `InputError` saying what it takes. The same rows give the same ids. `input_range_` is (min, max) of the rows it
    was fitted on; rows far outside it get a warning, one line. `image_shape_` is the shape of the images its rows
    are (None: not images)."""

    def __init__(self, steps: list, *, threads: int | None = None, transform_input=None, memory=None, verbose=False):  # noqa: ANN001
        super().__init__(steps, transform_input=transform_input, memory=memory, verbose=verbose)
        self.threads = threads

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # read as dense rows, whatever its steps take
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float32"]  # read as float32 rows
        return tags

    @property
    def n_features_in_(self) -> int:
        """The width of the rows it was fitted on, as recorded by `fit` or `assemble` (a first step such as UMAP
        records none); a model logged before either did has its first step's."""
        return self.__dict__.get("width_") or super().n_features_in_

    def fit(self, X: object, y: object = None, **params: object) -> ClusterPipeline:
        return super().fit(self._fit_rows(X), y, **params)

    def fit_predict(self, X: object, y: object = None, **params: object) -> np.ndarray:
        with threadpool_limits(limits=self.threads):
            return np.asarray(super().fit_predict(self._fit_rows(X), y, **params))

    @available_if(lambda self: hasattr(self.steps[-1][1], "transform"))
    def fit_transform(self, X: object, y: object = None, **params: object) -> np.ndarray:
        return super().fit_transform(self._fit_rows(X), y, **params)

    def _fit_rows(self, X: object) -> np.ndarray:
        """X read as dense float32 rows, as `predict` reads them; their width recorded."""
        X = dense_rows(X)
        self.width_ = X.shape[1]
        return X

    def predict(self, X: object, **params: object) -> np.ndarray:
        return self.predict_rows(self.rows(X), **params)

    # Rows read as in predict: float64 rows passed on as given fail in steps fitted on float32 (KMeans).
    @available_if(lambda self: hasattr(self.steps[-1][1], "transform"))
    def transform(self, X: object, **params: object) -> np.ndarray:
        return super().transform(self.rows(X), **params)

    @available_if(lambda self: hasattr(self.steps[-1][1], "score"))
    def score(self, X: object, y: object = None, **params: object) -> float:
        return super().score(self.rows(X), y, **params)

    def rows(self, X: object) -> np.ndarray:
        """X as the rows the model was fitted on (float32, dense), or an InputError saying what it takes; a warning
        when their values lie far outside the fitted range."""
        check_is_fitted(self)
        # a model logged before they were recorded: no image shape, and no width when its first step is UMAP
        width, shape = getattr(self, "n_features_in_", None), getattr(self, "image_shape_", None)
        takes = f"rows of {width or 'its'} values" + (f" ({'x'.join(map(str, shape))} images)" if shape else "")
        try:
            X = dense_rows(X, ensure_2d=False, allow_nd=True)
        except (TypeError, ValueError) as e:  # its first line: scikit-learn's next ones may print the whole array
            raise InputError(f"expected {takes} that are numbers (read as float32): {str(e).splitlines()[0]}") from None
        if shape and X.shape[1:] == tuple(shape):
            X = X.reshape(len(X), -1)
        if X.ndim != 2:
            raise InputError(f"expected {takes}, got an array of shape {X.shape}. Reshape your data: a row per sample")
        if width is not None and X.shape[1] != width:
            raise InputError(f"expected {takes}, got {X.shape[1]}")
        outside = out_of_range(X, getattr(self, "input_range_", None))  # models logged before it have none
        if outside:
            log.warning(outside)
        return X

    def predict_rows(self, X: np.ndarray, **params: object) -> np.ndarray:
        """The clusters of rows that `rows` has read."""
        with threadpool_limits(limits=self.threads):
            return np.asarray(super().predict(X, **params))


def dense_rows(X: object, **check: bool) -> np.ndarray:
    """X (an array, a DataFrame, a list of rows, a scipy sparse matrix) as a dense float32 array of finite numbers:
    scikit-learn's `check_array` (its `check` options), a ValueError for anything else."""
    if sparse.issparse(X):
        X = X.toarray()
    return check_array(X, dtype=np.float32, **check)


def out_of_range(X: np.ndarray, fitted: tuple[float, float] | None) -> str | None:
    """What is wrong when the values of X lie far outside the fitted range (beyond it by more than its span: raw
    0–255 pixels for a model fitted on 0–1), else None."""
    if fitted is None or X.size == 0:
        return None
    lo, hi = fitted
    span = max(hi - lo, np.finfo(np.float32).eps)
    low, high = float(np.nanmin(X)), float(np.nanmax(X))
    if low >= lo - span and high <= hi + span:
        return None
    return (
        f"the rows' values span [{low:g}, {high:g}], far outside [{lo:g}, {hi:g}] of the rows the model was fitted "
        "on: scale them as the training data were (images read as 0–1, say), or the clusters mean little"
    )


def assemble(
    reducer: object,
    predictor: object,
    threads: int,
    width: int,
    image_shape: tuple[int, ...] | None,
    input_range: tuple[float, float] | None,
) -> ClusterPipeline:
    """The reducer (a Pipeline's steps, or one step) followed by the fitted predictor, as one fitted pipeline that
    knows the rows it was fitted on: their `width`, the `image_shape` they are (None: not images) and the range of
    their values (`input_range`: the training data's min and max)."""
    steps = list(getattr(reducer, "steps", None) or [(type(reducer).__name__.lower(), reducer)])
    pipeline = ClusterPipeline([*steps, ("cluster", predictor)], threads=threads)
    pipeline.width_, pipeline.image_shape_, pipeline.input_range_ = width, image_shape, input_range
    return pipeline


class ConsensusPipeline(ClusterMixin, BaseEstimator):
    """The members' pipelines (`ClusterPipeline`s, one per seed) and the rule that combines their clusters into one
    (`consensus.BipartiteConsensus`): `predict` reads the rows once, as its first member does (what it takes, and
    the range warning), runs every member, then the rule. A run logs it with its members and rule fitted; `fit`
    fits them in place, as a Pipeline its steps: every member on X, the rule on their clusters (`labels_`)."""

    def __init__(self, members: list[ClusterPipeline], combiner: ClusterMixin) -> None:
        self.members = members
        self.combiner = combiner

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # as its members
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        try:
            for estimator in [*self.members, self.combiner]:
                check_is_fitted(estimator)
        except NotFittedError:
            return False
        return True

    @property
    def n_features_in_(self) -> int:
        return self.members[0].n_features_in_

    def fit(self, X: object, y: object = None) -> ConsensusPipeline:
        X = dense_rows(X)
        self.labels_ = self.combiner.fit(np.column_stack([m.fit_predict(X) for m in self.members])).labels_
        return self

    def predict(self, X: object) -> np.ndarray:
        check_is_fitted(self)
        X = self.members[0].rows(X)
        return np.asarray(self.combiner.predict(np.column_stack([m.predict_rows(X) for m in self.members])))


def requirements(model: ClusterPipeline | ConsensusPipeline) -> list[str]:
    """pip requirements, pinned to the versions that fitted it (umap-learn when a step is UMAP)."""
    steps = [s for m in getattr(model, "members", [model]) for _, s in m.steps]
    names = [*REQUIREMENTS, *(["umap-learn"] if any("umap" in type(s).__module__ for s in steps) else [])]
    out = []
    for name in names:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out
