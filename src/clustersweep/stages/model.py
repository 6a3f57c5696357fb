"""The fitted pipeline a run logs as its MLflow model: the reducer's steps, then the clusterer — or, for a clusterer
without `predict` (DBSCAN, HDBSCAN, agglomerative), the rule the run assigns its test set by
(`cluster.NearestCluster`) — so that `predict` maps raw rows to the cluster ids the run would give them. A consensus
run (`consensus.members`) logs `ConsensusPipeline`: every member's pipeline, then the rule that combines them."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

# What unpickling the model needs (clustersweep itself too: its own estimators are in it).
REQUIREMENTS = ("scikit-learn", "numpy", "scipy", "threadpoolctl", "cloudpickle")
log = logging.getLogger(__name__)


class ClusterPipeline(Pipeline):
    """A scikit-learn Pipeline whose `predict` runs on `threads` BLAS/OpenMP threads, as the run did
    (`compute.threads`), and reads its input as float32, as the run's data: the same rows give the same ids.
    `input_range_` is (min, max) of the rows it was fitted on; rows far outside it get a warning, one line."""

    def __init__(self, steps: list, *, threads: int | None = None, transform_input=None, memory=None, verbose=False):  # noqa: ANN001
        super().__init__(steps, transform_input=transform_input, memory=memory, verbose=verbose)
        self.threads = threads

    def predict(self, X: np.ndarray, **params: object) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        outside = out_of_range(X, getattr(self, "input_range_", None))  # models logged before it have none
        if outside:
            log.warning(outside)
        with threadpool_limits(limits=self.threads):
            return np.asarray(super().predict(X, **params))


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
    reducer: object, predictor: object, threads: int, input_range: tuple[float, float] | None
) -> ClusterPipeline:
    """The reducer (a Pipeline's steps, or one step) followed by the fitted predictor, as one fitted pipeline that
    knows the range of the values it was fitted on (`input_range`: the training data's min and max)."""
    steps = list(getattr(reducer, "steps", None) or [(type(reducer).__name__.lower(), reducer)])
    pipeline = ClusterPipeline([*steps, ("cluster", predictor)], threads=threads)
    pipeline.input_range_ = input_range
    return pipeline


class ConsensusPipeline(ClusterMixin, BaseEstimator):
    """The members' fitted pipelines (`ClusterPipeline`s, one per seed) and the fitted rule that combines their
    clusters into one (`consensus.BipartiteConsensus`): `predict` runs every member, then the rule."""

    def __init__(self, members: list[ClusterPipeline], combiner: ClusterMixin) -> None:
        self.members = members
        self.combiner = combiner

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.combiner.predict(np.column_stack([m.predict(X) for m in self.members])))


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
