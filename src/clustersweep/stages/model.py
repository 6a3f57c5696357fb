"""The fitted pipeline a run logs as its MLflow model: the reducer's steps, then the clusterer — or, for a clusterer
without `predict` (DBSCAN, HDBSCAN, agglomerative), the rule the run assigns its test set by
(`cluster.NearestCluster`) — so that `predict` maps raw rows to the cluster ids the run would give them."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import numpy as np
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

# What unpickling the model needs (clustersweep itself too: its own estimators are in it).
REQUIREMENTS = ("scikit-learn", "numpy", "scipy", "threadpoolctl", "cloudpickle")


class ClusterPipeline(Pipeline):
    """A scikit-learn Pipeline whose `predict` runs on `threads` BLAS/OpenMP threads, as the run did
    (`compute.threads`), and reads its input as float32, as the run's data: the same rows give the same ids."""

    def __init__(self, steps: list, *, threads: int | None = None, transform_input=None, memory=None, verbose=False):  # noqa: ANN001
        super().__init__(steps, transform_input=transform_input, memory=memory, verbose=verbose)
        self.threads = threads

    def predict(self, X: np.ndarray, **params: object) -> np.ndarray:
        with threadpool_limits(limits=self.threads):
            return np.asarray(super().predict(np.asarray(X, dtype=np.float32), **params))


def assemble(reducer: object, predictor: object, threads: int) -> ClusterPipeline:
    """The reducer (a Pipeline's steps, or one step) followed by the fitted predictor, as one fitted pipeline."""
    steps = list(getattr(reducer, "steps", None) or [(type(reducer).__name__.lower(), reducer)])
    return ClusterPipeline([*steps, ("cluster", predictor)], threads=threads)


def requirements(model: ClusterPipeline) -> list[str]:
    """pip requirements, pinned to the versions that fitted it (umap-learn when a step is UMAP)."""
    names = [*REQUIREMENTS, *(["umap-learn"] if any("umap" in type(s).__module__ for _, s in model.steps) else [])]
    out = []
    for name in names:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out
